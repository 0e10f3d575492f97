#include "core/cli/json_io.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace agt::cli {

using nlohmann::json;

namespace {

// ---------------------------------------------------------------------------
// Reading.

// Reads the subset of JSON described in the header; Parse() false means
// "not read here" (unusual input or a syntax error), never a wrong value.
class FastJsonParser {
 public:
  explicit FastJsonParser(absl::string_view text)
      : p_(text.data()), end_(text.data() + text.size()) {}

  bool Parse(json* out) {
    SkipSpace();
    if (!Value(out, 0)) return false;
    SkipSpace();
    return p_ == end_;
  }

 private:
  void SkipSpace() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  bool Literal(const char* word, size_t len) {
    if (static_cast<size_t>(end_ - p_) < len || std::memcmp(p_, word, len) != 0) return false;
    p_ += len;
    return true;
  }

  bool Value(json* out, int depth) {
    if (p_ == end_) return false;
    switch (*p_) {
      case '{':
        return Object(out, depth + 1);
      case '[':
        return Array(out, depth + 1);
      case '"': {
        std::string s;
        if (!String(&s)) return false;
        *out = std::move(s);
        return true;
      }
      case 't':
        if (!Literal("true", 4)) return false;
        *out = true;
        return true;
      case 'f':
        if (!Literal("false", 5)) return false;
        *out = false;
        return true;
      case 'n':
        if (!Literal("null", 4)) return false;
        *out = nullptr;
        return true;
      default:
        return Number(out);
    }
  }

  bool Object(json* out, int depth) {
    if (depth > kMaxFastDepth) return false;
    ++p_;  // '{'
    *out = json::object();
    json::object_t& object = out->get_ref<json::object_t&>();
    SkipSpace();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    for (;;) {
      if (p_ == end_ || *p_ != '"') return false;
      std::string key;
      if (!String(&key)) return false;
      SkipSpace();
      if (p_ == end_ || *p_ != ':') return false;
      ++p_;
      SkipSpace();
      json value;
      if (!Value(&value, depth)) return false;
      // A repeated key keeps its last value, as nlohmann's parser does.
      object.insert_or_assign(std::move(key), std::move(value));
      SkipSpace();
      if (p_ == end_) return false;
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return false;
      ++p_;
      SkipSpace();
    }
  }

  bool Array(json* out, int depth) {
    if (depth > kMaxFastDepth) return false;
    ++p_;  // '['
    *out = json::array();
    json::array_t& array = out->get_ref<json::array_t&>();
    SkipSpace();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    for (;;) {
      if (!Value(&array.emplace_back(), depth)) return false;
      SkipSpace();
      if (p_ == end_) return false;
      if (*p_ == ']') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return false;
      ++p_;
      SkipSpace();
    }
  }

  // ASCII text with the one-letter escapes; \u escapes, control characters
  // and bytes >= 0x80 (UTF-8 that nlohmann validates) are left to nlohmann.
  bool String(std::string* out) {
    ++p_;  // '"'
    const char* run = p_;
    for (;;) {
      if (p_ == end_) return false;
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        out->append(run, p_);
        ++p_;
        return true;
      }
      if (c < 0x20 || c >= 0x80) return false;
      if (c != '\\') {
        ++p_;
        continue;
      }
      out->append(run, p_);
      if (++p_ == end_) return false;
      switch (*p_) {
        case '"':
        case '\\':
        case '/':
          out->push_back(*p_);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        default:
          return false;
      }
      run = ++p_;
    }
  }

  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

  // JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?. Integers
  // become int64 (negative) or uint64 values, floats (or integers out of
  // their range) doubles, as in nlohmann's lexer. from_chars and nlohmann's
  // strtod both round correctly, so they give the same double; literals out
  // of the double range (where strtod gives inf or a subnormal) are left to
  // nlohmann.
  bool Number(json* out) {
    const char* start = p_;
    const char* s = p_;
    const bool negative = s < end_ && *s == '-';
    if (negative) ++s;
    if (s == end_) return false;
    if (*s == '0') {
      ++s;
    } else if (*s >= '1' && *s <= '9') {
      while (s < end_ && IsDigit(*s)) ++s;
    } else {
      return false;
    }
    bool is_float = false;
    if (s < end_ && *s == '.') {
      ++s;
      if (s == end_ || !IsDigit(*s)) return false;
      while (s < end_ && IsDigit(*s)) ++s;
      is_float = true;
    }
    if (s < end_ && (*s == 'e' || *s == 'E')) {
      ++s;
      if (s < end_ && (*s == '+' || *s == '-')) ++s;
      if (s == end_ || !IsDigit(*s)) return false;
      while (s < end_ && IsDigit(*s)) ++s;
      is_float = true;
    }
    if (!is_float) {
      if (negative) {
        int64_t v = 0;
        const auto [ptr, ec] = std::from_chars(start, s, v);
        if (ec == std::errc() && ptr == s) {
          *out = v;
          p_ = s;
          return true;
        }
      } else {
        uint64_t v = 0;
        const auto [ptr, ec] = std::from_chars(start, s, v);
        if (ec == std::errc() && ptr == s) {
          *out = v;
          p_ = s;
          return true;
        }
      }
    }
    double d = 0.0;
    const auto [ptr, ec] = std::from_chars(start, s, d, std::chars_format::general);
    if (ec != std::errc() || ptr != s) return false;
    *out = d;
    p_ = s;
    return true;
  }

  const char* p_;
  const char* end_;
};

// ---------------------------------------------------------------------------
// Writing.

// A buffer in front of a FILE* or a string.
class Output {
 public:
  explicit Output(std::FILE* file) : file_(file) {}
  explicit Output(std::string* text) : text_(text) {}
  ~Output() { Flush(); }

  void Put(char c) {
    if (used_ == kSize) Flush();
    buffer_[used_++] = c;
  }
  void Write(const char* s, size_t len) {
    if (len > kSize - used_) {
      Flush();
      if (len > kSize) {
        Emit(s, len);
        return;
      }
    }
    std::memcpy(buffer_ + used_, s, len);
    used_ += len;
  }
  void Spaces(size_t count) {
    while (count > 0) {
      if (used_ == kSize) Flush();
      const size_t n = std::min(count, kSize - used_);
      std::memset(buffer_ + used_, ' ', n);
      used_ += n;
      count -= n;
    }
  }
  // Room for `len` characters at the returned pointer; Commit the end.
  char* Reserve(size_t len) {
    if (len > kSize - used_) Flush();
    return buffer_ + used_;
  }
  void Commit(char* end) { used_ = static_cast<size_t>(end - buffer_); }
  bool ok() const { return ok_; }
  void Flush() {
    Emit(buffer_, used_);
    used_ = 0;
  }

 private:
  static constexpr size_t kSize = size_t{1} << 16;

  void Emit(const char* s, size_t len) {
    if (len == 0) return;
    if (text_ != nullptr) {
      text_->append(s, len);
    } else if (ok_ && std::fwrite(s, 1, len, file_) != len) {
      ok_ = false;
    }
  }

  std::FILE* file_ = nullptr;
  std::string* text_ = nullptr;
  bool ok_ = true;
  size_t used_ = 0;
  char buffer_[kSize];
};

// Printable ASCII other than '"' and '\\' is written as it is by nlohmann's
// serializer (ensure_ascii = false); anything else takes nlohmann's own
// escaping (and its replacement of invalid UTF-8).
void WriteString(const std::string& s, Output* out) {
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
      const std::string escaped = json(s).dump(-1, ' ', false, json::error_handler_t::replace);
      out->Write(escaped.data(), escaped.size());
      return;
    }
  }
  out->Put('"');
  out->Write(s.data(), s.size());
  out->Put('"');
}

template <typename Int>
void WriteInteger(Int value, Output* out) {
  char* at = out->Reserve(24);
  out->Commit(std::to_chars(at, at + 24, value).ptr);
}

// Arrays of scalars formatted ahead of Dump, in Dump's order (WriteJson with
// threads): Dump writes a piece's text when it reaches the piece's node.
struct Piece {
  const json* node;
  int current;  // the indent Dump has at the node
  std::string text;
};
struct Pieces {
  std::vector<Piece> list;
  size_t next = 0;
};

void Dump(const json& value, int indent, int current, Output* out, Pieces* pieces = nullptr) {
  switch (value.type()) {
    case json::value_t::object: {
      const json::object_t& object = value.get_ref<const json::object_t&>();
      if (object.empty()) {
        out->Write("{}", 2);
        return;
      }
      const bool pretty = indent >= 0;
      const int inner = current + (pretty ? indent : 0);
      out->Write("{\n", pretty ? 2 : 1);
      size_t i = 0;
      for (const auto& [key, element] : object) {
        if (pretty) out->Spaces(static_cast<size_t>(inner));
        WriteString(key, out);
        out->Write(": ", pretty ? 2 : 1);
        Dump(element, indent, inner, out, pieces);
        if (++i < object.size()) out->Write(",\n", pretty ? 2 : 1);
      }
      if (pretty) {
        out->Put('\n');
        out->Spaces(static_cast<size_t>(current));
      }
      out->Put('}');
      return;
    }
    case json::value_t::array: {
      const json::array_t& array = value.get_ref<const json::array_t&>();
      if (array.empty()) {
        out->Write("[]", 2);
        return;
      }
      if (pieces != nullptr && pieces->next < pieces->list.size() &&
          pieces->list[pieces->next].node == &value) {
        const std::string& text = pieces->list[pieces->next++].text;
        out->Write(text.data(), text.size());
        return;
      }
      const bool pretty = indent >= 0;
      const int inner = current + (pretty ? indent : 0);
      out->Write("[\n", pretty ? 2 : 1);
      for (size_t i = 0; i < array.size(); ++i) {
        if (pretty) out->Spaces(static_cast<size_t>(inner));
        Dump(array[i], indent, inner, out, pieces);
        if (i + 1 < array.size()) out->Write(",\n", pretty ? 2 : 1);
      }
      if (pretty) {
        out->Put('\n');
        out->Spaces(static_cast<size_t>(current));
      }
      out->Put(']');
      return;
    }
    case json::value_t::string:
      WriteString(value.get_ref<const std::string&>(), out);
      return;
    case json::value_t::boolean:
      if (value.get<bool>()) {
        out->Write("true", 4);
      } else {
        out->Write("false", 5);
      }
      return;
    case json::value_t::number_integer:
      WriteInteger(value.get<int64_t>(), out);
      return;
    case json::value_t::number_unsigned:
      WriteInteger(value.get<uint64_t>(), out);
      return;
    case json::value_t::number_float: {
      const double d = value.get<double>();
      if (!std::isfinite(d)) {
        out->Write("null", 4);
        return;
      }
      char* at = out->Reserve(32);
      out->Commit(FormatJsonDouble(d, at));
      return;
    }
    case json::value_t::null:
      out->Write("null", 4);
      return;
    default: {  // binary, discarded: rare, and nlohmann's layout is the contract
      const std::string text = value.dump(indent, ' ', false, json::error_handler_t::replace);
      out->Write(text.data(), text.size());
      return;
    }
  }
}

}  // namespace

absl::StatusOr<json> ParseJson(absl::string_view text) {
  json value;
  if (FastJsonParser(text).Parse(&value)) return value;
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line L, column C: ..."
    // (or "[json.exception.out_of_range.406] number overflow parsing '1e400'").
    std::string what = e.what();
    const size_t bracket = what.find("] ");
    if (bracket != std::string::npos) what = what.substr(bracket + 2);
    return absl::InvalidArgumentError(what);
  }
}

char* FormatJsonDouble(double value, char* out) {
  if (std::signbit(value)) {
    *out++ = '-';
    value = -value;
  }
  if (value == 0) {
    std::memcpy(out, "0.0", 3);
    return out + 3;
  }
  // Shortest round-trip digits, as d.ddde[+-]XX.
  char sci[32];
  const char* const sci_end =
      std::to_chars(sci, sci + sizeof sci, value, std::chars_format::scientific).ptr;
  char digits[20];
  int k = 0;  // number of digits
  const char* p = sci;
  for (; p < sci_end && *p != 'e'; ++p) {
    if (*p != '.') digits[k++] = *p;
  }
  ++p;  // 'e'
  const bool negative_exponent = *p++ == '-';
  int e = 0;
  for (; p < sci_end; ++p) e = 10 * e + (*p - '0');
  if (negative_exponent) e = -e;
  // value = 0.digits * 10^n; nlohmann's format_buffer with min_exp = -4 and
  // max_exp = 15 (digits10): fixed notation for 10^-4 <= value < 10^15.
  const int n = e + 1;
  constexpr int kMinExp = -4;
  constexpr int kMaxExp = 15;
  if (k <= n && n <= kMaxExp) {  // digits[000].0
    std::memcpy(out, digits, static_cast<size_t>(k));
    std::memset(out + k, '0', static_cast<size_t>(n - k));
    out += n;
    *out++ = '.';
    *out++ = '0';
    return out;
  }
  if (0 < n && n <= kMaxExp) {  // dig.its
    std::memcpy(out, digits, static_cast<size_t>(n));
    out[n] = '.';
    std::memcpy(out + n + 1, digits + n, static_cast<size_t>(k - n));
    return out + k + 1;
  }
  if (kMinExp < n && n <= 0) {  // 0.[000]digits
    *out++ = '0';
    *out++ = '.';
    std::memset(out, '0', static_cast<size_t>(-n));
    out += -n;
    std::memcpy(out, digits, static_cast<size_t>(k));
    return out + k;
  }
  *out++ = digits[0];  // d[.igits]e+XX
  if (k > 1) {
    *out++ = '.';
    std::memcpy(out, digits + 1, static_cast<size_t>(k - 1));
    out += k - 1;
  }
  *out++ = 'e';
  int x = n - 1;
  *out++ = x < 0 ? '-' : '+';
  if (x < 0) x = -x;
  if (x >= 100) {
    *out++ = static_cast<char>('0' + x / 100);
    x %= 100;
    *out++ = static_cast<char>('0' + x / 10);
    *out++ = static_cast<char>('0' + x % 10);
  } else {
    *out++ = static_cast<char>('0' + x / 10);
    *out++ = static_cast<char>('0' + x % 10);
  }
  return out;
}

std::string SerializeJson(const json& value, int indent) {
  std::string text;
  {
    Output out(&text);
    Dump(value, indent, 0, &out);
  }
  return text;
}

namespace {

// The non-empty arrays of scalars under `value`, in Dump's order, with the
// indent Dump reaches them at; `scalars` counts their elements.
void CollectPieces(const json& value, int indent, int current, Pieces* pieces, size_t* scalars) {
  const int inner = current + (indent >= 0 ? indent : 0);
  if (value.is_object()) {
    for (const auto& [key, element] : value.get_ref<const json::object_t&>()) {
      CollectPieces(element, indent, inner, pieces, scalars);
    }
    return;
  }
  if (!value.is_array() || value.empty()) return;
  const json::array_t& array = value.get_ref<const json::array_t&>();
  bool leaf = true;
  for (const json& element : array) {
    if (element.is_structured()) {
      leaf = false;
      break;
    }
  }
  if (leaf) {
    pieces->list.push_back({&value, current, std::string()});
    *scalars += array.size();
    return;
  }
  for (const json& element : array) CollectPieces(element, indent, inner, pieces, scalars);
}

}  // namespace

bool WriteJson(const json& value, int indent, std::FILE* file, int threads) {
  Output out(file);
  Pieces pieces;
  if (threads > 1) {
    size_t scalars = 0;
    CollectPieces(value, indent, 0, &pieces, &scalars);
    if (scalars >= kParallelScalars) {
      // Contiguous runs of pieces of about equal numbers of scalars, one per
      // thread; each piece is Dump's own text of its node, so the file is
      // the same bytes as the serial one.
      std::vector<size_t> bounds = {0};
      size_t seen = 0;
      for (size_t i = 0; i < pieces.list.size(); ++i) {
        seen += pieces.list[i].node->size();
        const size_t part = bounds.size();
        if (part < static_cast<size_t>(threads) && seen * threads >= scalars * part) {
          bounds.push_back(i + 1);
        }
      }
      if (bounds.back() != pieces.list.size()) bounds.push_back(pieces.list.size());
      const auto format = [&](size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) {
          Piece& piece = pieces.list[i];
          Output text(&piece.text);
          Dump(*piece.node, indent, piece.current, &text);
        }
      };
      std::vector<std::thread> workers;
      for (size_t t = 1; t + 1 < bounds.size(); ++t) {
        workers.emplace_back(format, bounds[t], bounds[t + 1]);
      }
      format(bounds[0], bounds[1]);
      for (std::thread& w : workers) w.join();
    } else {
      pieces.list.clear();
    }
  }
  Dump(value, indent, 0, &out, pieces.list.empty() ? nullptr : &pieces);
  out.Flush();
  return out.ok();
}

}  // namespace agt::cli
