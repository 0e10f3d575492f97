#!/usr/bin/python3
"""Compares two results JSON files value by value, dropping every "seconds" field.
Doubles are compared by their exact value and sign (repr of the parsed float), so
-0.0 differs from 0.0 and two spellings of the same double are equal."""
import json, sys
def load(path):
    return json.load(open(path), parse_float=lambda s: ("float", repr(float(s))))
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k != "seconds"}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
a, b = strip(load(sys.argv[1])), strip(load(sys.argv[2]))
print("identical but for seconds" if a == b else "DIFFERENT")
sys.exit(0 if a == b else 1)
