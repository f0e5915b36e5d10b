"""rlft: SFT, DPO/ORPO and GRPO with verifiable rewards for small language models.

Stages are entry scripts (``rlft/sft.py``, ...) run as
``accelerate launch rlft/<stage>.py recipes/<name>.yaml``, ``python -m rlft.<stage>``
or ``rlft <stage>``; the library modules beside them own config, data, models
and evaluation.
"""

from rlft.core.noise import quiet_checked_dependencies

quiet_checked_dependencies()  # before TRL, vLLM or peft are imported: see rlft.core.noise

__version__ = "0.1.0"
