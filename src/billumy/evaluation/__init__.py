"""Evaluation of ``/api/insights``: a set of questions whose right answers are known, scored
against a real server (``billumy eval``).

* :mod:`billumy.evaluation.cases` reads and checks the case file (``evals/insights/cases.toml``)
  and runs each case's reference query, the independent source of its expected numbers;
* :mod:`billumy.evaluation.scoring` scores one response against one case, without a server;
* :mod:`billumy.evaluation.runner` sends the cases to a server and times them;
* :mod:`billumy.evaluation.report` prints the per-case table, the failures and the totals.
"""
