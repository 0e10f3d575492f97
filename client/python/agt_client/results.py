"""Answers of the certificate, unlearning and privacy calls as NumPy arrays.

Budgets are reported as their n values (rows per batch), never as indices
into the model's budget list: axis 1 of every per-budget array follows
``n``, which is the model's budget order as GetModel gives it.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class Certificates:
    """CertifyPredictions for P inputs of a model with B budgets and K logits.

    n, label_n: (B,) the budgets (label_n is 0 unless the model is poisoning).
    predicted: (P,) the nominal class. nominal_logits: (P, K).
    lower, upper: (P, B, K) logit bounds per budget.
    stable: (P, B) bool. correct: (P, B) bool, or None when no labels were given.
    largest_stable_n: (P,) the largest n at which the prediction is stable,
      -1 where it is stable at none.
    certified_unchanged: (P,) bool for removal models (deletions accepted so
      far leave the prediction unchanged), else None.
    guarantee: what the certificates assume, in words. model: the agt.v1.Model.
    """

    n: np.ndarray
    label_n: np.ndarray
    predicted: np.ndarray
    nominal_logits: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    stable: np.ndarray
    correct: Optional[np.ndarray]
    largest_stable_n: np.ndarray
    certified_unchanged: Optional[np.ndarray]
    guarantee: str
    model: object

    def stable_at(self, n):
        """(P,) bool: stable at budget n (which must be one of the model's)."""
        return self.stable[:, _budget_column(self.n, n)]


@dataclass
class DatasetCertificates:
    """CertifyDataset: one entry per budget, in the model's order (axis of n).

    Classification: accuracy_nominal/worst/best, stable_fraction.
    Regression: mse_nominal/worst/best. num_rows: rows certified.
    """

    n: np.ndarray
    label_n: np.ndarray
    accuracy_nominal: np.ndarray
    accuracy_worst: np.ndarray
    accuracy_best: np.ndarray
    stable_fraction: np.ndarray
    mse_nominal: np.ndarray
    mse_worst: np.ndarray
    mse_best: np.ndarray
    num_rows: int
    guarantee: str


@dataclass
class TrainingHistory:
    """GetTrainingHistory: the job's recorded points (at most max_points, spread
    evenly over the run), as arrays.

    iteration, epoch, nominal_loss: (T,). total_width: (T, B), column j for
    budget n[j] (label_n[j]). stride: iterations between points now.
    """

    job_id: str
    n: np.ndarray
    label_n: np.ndarray
    iteration: np.ndarray
    epoch: np.ndarray
    nominal_loss: np.ndarray
    total_width: np.ndarray
    stride: int
    total_iterations: int
    max_points: int

    def width_at(self, n):
        """(T,) total width of budget n (which must be one of the job's)."""
        return self.total_width[:, _budget_column(self.n, n)]


def training_history_from_proto(response):
    budgets = len(response.budgets)
    width = np.array([list(p.total_width) for p in response.points], dtype=np.float64)
    return TrainingHistory(
        job_id=response.job_id,
        n=np.array([b.n for b in response.budgets], dtype=np.int64),
        label_n=np.array([b.label_n for b in response.budgets], dtype=np.int64),
        iteration=np.array([p.iteration for p in response.points], dtype=np.int64),
        epoch=np.array([p.epoch for p in response.points], dtype=np.int64),
        nominal_loss=np.array([p.nominal_loss for p in response.points], dtype=np.float64),
        total_width=width.reshape(len(response.points), budgets),
        stride=response.stride,
        total_iterations=response.total_iterations,
        max_points=response.max_points)


@dataclass
class UnlearningChecks:
    """CheckUnlearning for P inputs.

    predicted: (P,) nominal class. certified_unchanged: (P,) bool.
    largest_stable_n: (P,) the largest trained removal n at which the
      prediction is stable, -1 where none.
    deletions (d), max_deletions_per_batch (m), max_budget (max N), guarantee.
    """

    predicted: np.ndarray
    certified_unchanged: np.ndarray
    largest_stable_n: np.ndarray
    deletions: int
    max_deletions_per_batch: int
    max_budget: int
    guarantee: str


@dataclass
class PrivatePredictions:
    """PrivatePredict: one released label per input, and the budget after it.

    labels: (P,) the noisy labels. n_star, sensitivity, noise_scale: (P,),
      -1 where withheld (private-querier tokens).
    mechanism: the PrivacyMechanism name used. epsilon_per_label,
    epsilon_spent (this request), epsilon_remaining, epsilon_total (the
    dataset's budget after it), quanta_charged (exact). budget: the
    agt.v1.PrivacyBudget. guarantee: in words.
    """

    labels: np.ndarray
    n_star: np.ndarray
    sensitivity: np.ndarray
    noise_scale: np.ndarray
    mechanism: str
    epsilon_per_label: float
    epsilon_spent: float
    epsilon_remaining: float
    epsilon_total: float
    quanta_charged: int
    budget: object
    guarantee: str


def _budget_column(ns, n):
    hits = np.flatnonzero(ns == n)
    if hits.size == 0:
        raise ValueError(f"n={n} is not a budget of the model (its budgets: {ns.tolist()})")
    return int(hits[0])


def certificates_from_proto(response, model, has_labels):
    """Certificates from a CertifyPredictionsResponse and the model's agt.v1.Model."""
    n = np.array([b.budget.n for b in model.budgets], dtype=np.int64)
    label_n = np.array([b.budget.label_n for b in model.budgets], dtype=np.int64)
    points = list(response.points)
    count, budgets = len(points), len(n)
    logits = len(points[0].nominal_logits) if points else 0
    lower = np.empty((count, budgets, logits))
    upper = np.empty((count, budgets, logits))
    for i, point in enumerate(points):
        if len(point.bounds) != budgets:
            raise ValueError(f"point {i} has {len(point.bounds)} budgets, the model {budgets}")
        for b, bounds in enumerate(point.bounds):
            lower[i, b] = bounds.lower
            upper[i, b] = bounds.upper
    # The server answers an index into the model's budgets; callers want n.
    largest = np.array([n[p.largest_stable_budget] if 0 <= p.largest_stable_budget < budgets
                        else -1 for p in points], dtype=np.int64)
    unchanged = None
    if points and all(p.HasField("certified_unchanged") for p in points):
        unchanged = np.array([p.certified_unchanged for p in points], dtype=bool)
    return Certificates(
        n=n,
        label_n=label_n,
        predicted=np.array([p.predicted_class for p in points], dtype=np.int64),
        nominal_logits=np.array([list(p.nominal_logits) for p in points]).reshape(count, logits),
        lower=lower,
        upper=upper,
        stable=np.array([list(p.stable) for p in points], dtype=bool).reshape(count, budgets),
        correct=(np.array([list(p.correct) for p in points], dtype=bool).reshape(count, budgets)
                 if has_labels else None),
        largest_stable_n=largest,
        certified_unchanged=unchanged,
        guarantee=response.guarantee,
        model=model,
    )


def dataset_certificates_from_proto(response):
    """DatasetCertificates from a CertifyDatasetResponse."""
    entries = list(response.budgets)

    def column(name):
        return np.array([getattr(e, name) for e in entries], dtype=np.float64)

    return DatasetCertificates(
        n=np.array([e.budget.n for e in entries], dtype=np.int64),
        label_n=np.array([e.budget.label_n for e in entries], dtype=np.int64),
        accuracy_nominal=column("accuracy_nominal"),
        accuracy_worst=column("accuracy_worst"),
        accuracy_best=column("accuracy_best"),
        stable_fraction=column("stable_fraction"),
        mse_nominal=column("mse_nominal"),
        mse_worst=column("mse_worst"),
        mse_best=column("mse_best"),
        num_rows=int(response.num_rows),
        guarantee=response.guarantee,
    )


def unlearning_checks_from_proto(response):
    """UnlearningChecks from a CheckUnlearningResponse."""
    points = list(response.points)
    return UnlearningChecks(
        predicted=np.array([p.predicted_class for p in points], dtype=np.int64),
        certified_unchanged=np.array([p.certified_unchanged for p in points], dtype=bool),
        largest_stable_n=np.array([p.largest_stable_budget for p in points], dtype=np.int64),
        deletions=int(response.deletions),
        max_deletions_per_batch=int(response.max_deletions_per_batch),
        max_budget=int(response.max_budget),
        guarantee=response.guarantee,
    )


def private_predictions_from_proto(response):
    """PrivatePredictions from a PrivatePredictResponse."""
    from agt.v1 import privacy_pb2  # noqa: PLC0415 - stubs load lazily

    labels = list(response.labels)
    return PrivatePredictions(
        labels=np.array([x.label for x in labels], dtype=np.int64),
        n_star=np.array([x.n_star for x in labels], dtype=np.int64),
        sensitivity=np.array([x.sensitivity for x in labels], dtype=np.float64),
        noise_scale=np.array([x.noise_scale for x in labels], dtype=np.float64),
        mechanism=privacy_pb2.PrivacyMechanism.Name(response.mechanism),
        epsilon_per_label=response.epsilon_per_label,
        epsilon_spent=response.epsilon_spent,
        epsilon_remaining=response.budget.remaining_epsilon,
        epsilon_total=response.budget.total_epsilon,
        quanta_charged=int(response.quanta_charged),
        budget=response.budget,
        guarantee=response.guarantee,
    )
