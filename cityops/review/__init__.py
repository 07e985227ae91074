"""The post-event review 复盘 (plan item 10; interfaces.md §6).

Modules by concept:

- :mod:`cityops.review.observations` — observed levels per unit × hazard × review window, from
  gridded analyses (through the same ingest and rule engine) or station observations.
- :mod:`cityops.review.warnings` — the warnings issued over the event, from brief run folders,
  CAP folders or a CSV log of signals actually issued.
- :mod:`cityops.review.verification` — event-based verification: outcome, level error and
  lead time per case; banner-level scores.
- :mod:`cityops.review.response` — response timeliness from the task ledger.
- :mod:`cityops.review.safety` — the urban safe-operation index (plan item 15(2)).
- :mod:`cityops.review.records` — readers of the record tables (12345 tickets, alarms,
  incidents, heating complaints).
- :mod:`cityops.review.cases` — the case library of structured findings.
- :mod:`cityops.review.drill` — a drill ledger for a scenario (the yearly drill, the sample).
- :mod:`cityops.review.run` — the review's inputs parsed once
  (:class:`~cityops.review.run.ReviewInputs`), one whole review
  (:func:`~cityops.review.run.run_review`) and its files. The ``cityops review`` workflow
  (output folder, notebook, case library) is :mod:`cityops.reviewing`.
- :mod:`cityops.review.windows` — the review windows aligned to 00 UTC.
"""
