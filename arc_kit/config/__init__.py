"""Every setting the kit has, each with one default, and the one loader that reads them from TOML and flags.

How the types are named, so the name says what a value is:

- ``...Settings``: one TOML table, or a part of one (``[solver]`` is ``SolverSettings``, ``[ttt.lora]`` is
  ``LoraSettings``); its flags are generated from it.
- ``...Config``: a whole settings file, several tables side by side: what ``--config`` (``TrainConfig``) or
  ``--settings`` (``SubmissionConfig``, ``EvaluateConfig``) reads, and what a kernel carries in its literal
  (``TrainKernelConfig`` too).
- Anything a run builds or holds while it works takes neither suffix (``RunJob``, ``Ledger``,
  ``WheelhouseOptions``, ``TinyModelShape``, ``...Result``): a ``Settings`` or ``Config`` is always something a
  user can write down.

``tests/test_architecture.py`` holds the rule.
"""
