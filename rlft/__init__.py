"""rlft: SFT, DPO/ORPO and GRPO with verifiable rewards for small language models.

Stages are entry scripts (``rlft/sft.py``, ...) run as
``accelerate launch rlft/<stage>.py recipes/<name>.yaml``, ``python -m rlft.<stage>``
or ``rlft <stage>``; the library modules beside them own config, data, models
and evaluation.
"""

__version__ = "0.1.0"
