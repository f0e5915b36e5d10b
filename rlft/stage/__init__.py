"""What every training stage shares: the skeleton, the run record, checkpoints, input checks, training guards.

The stage skeleton is :class:`rlft.stage.skeleton.TrainingStage`; DPO and ORPO
share :class:`rlft.stage.preference.PreferenceStage`.
"""
