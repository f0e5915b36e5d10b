"""What happens to every key a stage accepts: used, used only under a condition, or refused.

A stage's parser accepts the fields of rlft's argument groups, of TRL's
``ModelConfig`` (through :class:`rlft.core.arguments.ModelArguments`) and of
TRL's stage config (``SFTConfig``, ``DPOConfig``, ``ORPOConfig``,
``GRPOConfig``, which extend transformers' ``TrainingArguments``). Each field
is listed here, by name, with its fate:

- **used**: something reads it (rlft, TRL's trainer or transformers' Trainer);
- **only with** a condition (``engine: vllm``, ``use_peft: true``, ...): set
  while the condition does not hold, it is named in one warning line, since
  it does nothing; a recipe keeps working when the command line switches, e.g.,
  ``--engine hf``;
- **refused**: nothing in rlft would honour it (rlft gives its trainers no
  evaluation split, loads the model itself, generates with its own engine):
  set to anything but its default, the run stops with one line saying what to
  use instead, before anything loads.

The tables shared by every stage are here; each stage's own table
(``SFT_KEYS``, ``GRPO_KEYS``, ...) is named by its entry in
:mod:`rlft.stage.registry`, and :func:`rlft.stage.registry.rules_for` joins
them. The parse applies them (:mod:`rlft.stage.parsing`).
``tests/test_settings.py`` walks every field of every stage and fails on one
that is not listed, so a new TRL or transformers field cannot be accepted
silently; ``tests/test_key_effects.py`` changes every key that is not refused
and fails when nothing the stage hands on changes (TRL's config, the rows,
the ``from_pretrained`` call, the LoRA config, the engine's settings, the
rewards), unless it names the test that shows the key's effect on a run.

Example:
    >>> with_common_rules(GRPO_KEYS)["use_vllm"].kind
    'refused'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rlft.core import accelerator


@dataclass(frozen=True)
class Rule:
    """What happens to one key: ``used``, ``only_with`` (a condition) or ``refused`` (with what to do instead)."""

    kind: str
    why: str = ""
    holds: Callable[[Any], bool] | None = None  # only_with: does the condition hold for these StageArgs?


USED = Rule("used")


def refused(why: str) -> Rule:
    return Rule("refused", why)


def only_with(condition: str, holds: Callable[[Any], bool]) -> Rule:
    return Rule("only_with", condition, holds)


def _names(text: str, rule: Rule) -> dict[str, Rule]:
    return dict.fromkeys(text.split(), rule)


# transformers' Trainer reads these (TRL's trainers subclass it).
TRAINER_USED = _names("""
    output_dir per_device_train_batch_size num_train_epochs max_steps learning_rate lr_scheduler_type
    lr_scheduler_kwargs warmup_steps optim optim_args weight_decay adam_beta1 adam_beta2 adam_epsilon
    optim_target_modules gradient_accumulation_steps average_tokens_across_devices max_grad_norm
    label_smoothing_factor bf16 fp16 tf32 gradient_checkpointing gradient_checkpointing_kwargs torch_compile
    torch_compile_backend torch_compile_mode use_liger_kernel liger_kernel_config use_cache neftune_noise_alpha
    torch_empty_cache_steps auto_find_batch_size logging_strategy logging_steps logging_first_step
    log_on_each_node include_num_input_tokens_seen log_level log_level_replica disable_tqdm report_to run_name
    project trackio_space_id trackio_bucket_id trackio_static_space_id save_only_model save_strategy save_steps
    save_on_each_node save_total_limit enable_jit_checkpoint push_to_hub hub_token hub_private_repo hub_model_id
    hub_strategy hub_always_push hub_revision ignore_data_skip restore_callback_states_from_checkpoint
    full_determinism seed data_seed use_cpu accelerator_config dataloader_drop_last
    dataloader_num_workers dataloader_persistent_workers dataloader_prefetch_factor
    dataloader_multiprocessing_context dataloader_in_order remove_unused_columns label_names
    train_sampling_strategy length_column_name ddp_find_unused_parameters ddp_bucket_cap_mb ddp_broadcast_buffers
    ddp_static_graph ddp_backend ddp_timeout fsdp fsdp_config deepspeed debug skip_memory_metrics local_rank
""", USED)

NO_EVAL = ("rlft evaluates by greedy generation scored by the recipe's rewards, not by a loss on an evaluation "
           "split: eval_steps, eval_samples, eval_max_new_tokens, eval_batch_size, keep_best")
TRAINER_REFUSED = {
    **_names("""eval_delay per_device_eval_batch_size prediction_loss_only eval_do_concat_batches
                eval_use_gather_object eval_accumulation_steps include_for_metrics batch_eval_metrics bf16_full_eval
                fp16_full_eval do_eval do_predict""", refused(NO_EVAL)),
    "eval_strategy": refused("use eval_steps: N (rlft's greedy evaluation every N steps)"),
    "eval_on_start": refused("the closing table scores the base model; eval_steps: N evaluates during training"),
    "metric_for_best_model": refused("use keep_best: eval/accuracy (any metric the evaluation logs)"),
    "greater_is_better": refused("keep_best follows transformers' rule: a metric ending in loss is minimized"),
    "load_best_model_at_end": refused("use final_model: best (with keep_best)"),
    "do_train": refused("rlft stages always train; drop it"),
    "resume_from_checkpoint": refused("use resume: true (rlft finds the run's last complete checkpoint)"),
    # transformers types it as accelerate's ParallelismConfig, which no YAML or flag value can be: any value set
    # here reached TRL as a string and crashed the run when the config was first logged
    "parallelism_config": refused("a recipe cannot build accelerate's ParallelismConfig: set parallelism in the "
                                  "accelerate config you launch with (launch/*.yaml, docs/scaling.md)"),
    "logging_nan_inf_filter": refused("rlft logs a NaN loss as NaN so its training guard can stop the run"),
}


def _cuda(args: Any) -> bool:
    return accelerator.cuda_available()


# transformers sets it false whenever use_cpu is (rlft's default without CUDA): pinned memory only speeds copies
# to a GPU
CUDA_ONLY = {"dataloader_pin_memory": only_with("a CUDA device", _cuda)}


def _peft(args: Any) -> bool:
    return bool(args.model.use_peft)


def _four_bit(args: Any) -> bool:
    return bool(args.model.load_in_4bit)


MODEL = {
    **_names("model_name_or_path model_revision dtype attn_implementation use_peft load_in_4bit "
             "chat_template_kwargs", USED),
    # LLM.int8 also quantizes the activations of every matmul, so no float weights compute the policy it trains:
    # the dequantized 8-bit bundled model was 0.24 nats/token (max 3.1) off the 8-bit one on a chat probe, which
    # the vLLM engine, rlft merge and the evaluation of the run would all silently serve instead.
    "load_in_8bit": refused("load_in_8bit is not supported: LLM.int8 quantizes activations too, so no merged or "
                            "served float model computes what it trains (0.24 nats/token off on the bundled "
                            "model); use load_in_4bit (QLoRA, nf4), whose dequantized weights are exact"),
    **_names("lora_r lora_alpha lora_dropout lora_target_modules lora_target_parameters lora_modules_to_save "
             "lora_task_type use_rslora use_dora", only_with("use_peft: true", _peft)),
    **_names("bnb_4bit_quant_type use_bnb_nested_quant bnb_4bit_quant_storage",
             only_with("load_in_4bit: true", _four_bit)),
}

def _task(args: Any) -> bool:
    return str(args.data.dataset_name).startswith("task:")


def _files(args: Any) -> bool:
    return not _task(args)


RLFT = {
    **_names("""dataset_name num_train_samples num_test_samples eval_before_after eval_samples eval_max_new_tokens
                eval_batch_size eval_steps keep_best final_model early_stopping_patience reward_funcs reward_kwargs
                resume overwrite verbose memory_check system_prompt""", USED),
    # a task generates its own train and test rows, already as prompts; files and hub datasets are read
    "task_kwargs": only_with("task: data", _task),
    **_names("dataset_config dataset_train_split dataset_test_split test_size prompt_column",
             only_with("file or hub data (a task: generator makes its own splits and prompts)", _files)),
    # the instruction is added to the prompts prompt_column builds; rows that have prompts are left as they are
    "prompt_instruction": only_with("prompt_column (file or hub data)", lambda a: _files(a) and bool(a.data.prompt_column)),
}

MODEL_LOADED_BY_RLFT = refused("rlft loads the model itself: use model_name_or_path, dtype, attn_implementation, "
                               "model_revision, load_in_4bit")
COMMON_TRL = {"model_init_kwargs": MODEL_LOADED_BY_RLFT, "trust_remote_code": USED}


def _vllm(args: Any) -> bool:
    # the rollout group by its field (stage may not import rollout): GRPO's RolloutArguments
    return any(getattr(part, "vllm_sync", None) is not None and part.engine == "vllm" for part in args.parts)


def _hf(args: Any) -> bool:
    return not _vllm(args)


def _colocate(args: Any) -> bool:
    # engine: vllm is TRL's colocate mode on CUDA unless the recipe asks for rlft's adapter hot-swap
    return (_vllm(args) and accelerator.cuda_available()
            and all(getattr(p, "vllm_sync", "") != "adapter" for p in args.parts))


def _tools(args: Any) -> bool:
    # the tool group by its fields (stage may not import rlft.tools): GRPO's and SFT's ToolArguments
    return any(getattr(p, "max_turns", None) is not None and (getattr(p, "tools", None) or getattr(p, "environment",
               None)) for p in args.parts)


def _sync_ref(args: Any) -> bool:
    return bool(getattr(args.train, "sync_ref_model", False))


def _own_engine(args: Any) -> bool:
    return _vllm(args) and not _colocate(args)


RLFT_SETS = "rlft sets it: engine: vllm is TRL's colocate mode on CUDA and rlft's own engine on CPU (docs/scaling.md)"
GRPO_KEYS = {
    **_names("""beta cast_lm_head_to_fp32 chat_template_kwargs delta disable_dropout entropy_coef entropy_coef_delta
                entropy_coef_max entropy_coef_min entropy_target epsilon epsilon_high generation_batch_size
                importance_sampling_level log_completions log_completions_hub_repo log_unique_prompts
                loss_type mask_truncated_completions max_completion_length multi_objective_aggregation
                num_completions_to_print num_generations num_iterations off_policy_mask_threshold pad_to_multiple_of
                reward_weights router_aux_loss_coef sapo_temperature_neg
                sapo_temperature_pos scale_rewards shuffle_dataset steps_per_generation sync_ref_model temperature
                top_entropy_quantile top_k top_p repetition_penalty use_adaptive_entropy use_bias_correction_kl
                vespo_k_neg vespo_k_pos vespo_lambda_neg vespo_lambda_pos min_p generation_kwargs""", USED),
    # TRL's RepeatSampler orders GRPO's prompts (each num_generations times), shuffled with seed
    **_names("data_seed train_sampling_strategy length_column_name",
             refused("GRPO's prompts are ordered by TRL's RepeatSampler, shuffled with seed (shuffle_dataset turns "
                     "that off); drop it")),
    "log_multimodal": refused("rlft trains on text prompts: there are no images to log"),
    # a reference model that moves (TD-MPO style) needs one to move: sync_ref_model is checked in GRPO.check_data
    **_names("ref_model_mixup_alpha ref_model_sync_steps", only_with("sync_ref_model: true", _sync_ref)),
    # TRL's transformers generation reads these; rlft's vLLM engine does not
    **_names("""cache_implementation use_transformers_paged use_transformers_continuous_batching
                transformers_continuous_batching_config ds3_gather_for_generation""",
             only_with("engine: hf", _hf)),
    # rlft's vLLM engine and TRL's importance-sampling correction against it read these
    # both vLLM paths read these: rlft's engine (CPU) and TRL's colocate mode (CUDA), with its correction
    **_names("""vllm_gpu_memory_utilization vllm_importance_sampling_correction vllm_importance_sampling_mode
                vllm_importance_sampling_cap vllm_importance_sampling_clip_min vllm_importance_sampling_clip_max
                vllm_sync vllm_max_model_len sync_check sync_check_tolerance rollout_fallback""",
             only_with("engine: vllm", _vllm)),
    # TRL's colocate mode starts vLLM in the checkpoint's dtype
    "vllm_dtype": only_with("rlft's vLLM engine: engine: vllm on CPU, vllm_sync: adapter on CUDA", _own_engine),
    **_names("vllm_tensor_parallel_size vllm_enable_sleep_mode vllm_model_impl",
             only_with("engine: vllm on CUDA (TRL's colocate mode)", _colocate)),
    **_names("use_vllm vllm_mode", refused(RLFT_SETS)),
    **_names("vllm_server_base_url vllm_server_host vllm_server_port vllm_server_timeout vllm_group_port",
             refused("TRL's vLLM server mode is not wired in; engine: vllm runs vLLM in the training processes")),
    "vllm_max_model_length": refused("use vllm_max_model_len (both of rlft's vLLM paths read that one)"),
    "vllm_structured_outputs_regex": refused("rlft's vLLM paths do not constrain their outputs"),
    "num_generations_eval": refused(NO_EVAL),
    "max_tool_calling_iterations": refused("use max_turns (model turns per completion: tool rounds + 1)"),
    "tools": USED,
    "environment": USED,
    **_names("max_turns tool_timeout", only_with("tools or an environment", _tools)),
    **_names("engine on_reward_error skip_zero_advantage length_buckets max_prompt_length", USED),
}

SFT_KEYS = {
    **_names("""activation_offloading assistant_only_loss chat_template_path completion_only_loss dataset_kwargs
                dataset_num_proc eos_token loss_type max_length packing packing_strategy pad_to_multiple_of
                pad_token padding_free router_aux_loss_coef shuffle_dataset truncation_mode sft_target_column""",
             USED),
    "dataset_text_field": refused("rlft gives SFT prompt/completion or messages rows, never a text column"),
    "tools": USED,
    "environment": refused("SFT trains on fixed conversations and plays no episodes: use the environment in "
                           "GRPO, and tools: here"),
    **_names("max_turns tool_timeout", only_with("tools", _tools)),
    "eval_packing": refused(NO_EVAL),
}

DPO_KEYS = _names("""activation_offloading beta dataset_num_proc disable_dropout discopop_tau f_alpha_divergence_coef
                f_divergence_type label_smoothing ld_alpha loss_type loss_weights max_length pad_to_multiple_of
                pad_token padding_free precompute_ref_batch_size precompute_ref_log_probs ref_model_mixup_alpha
                ref_model_sync_steps router_aux_loss_coef sync_ref_model truncation_mode use_weighting""", USED)

ORPO_KEYS = {
    **_names("beta dataset_num_proc disable_dropout is_encoder_decoder max_completion_length max_length "
             "padding_value", USED),
    "generate_during_eval": refused(NO_EVAL),
}

NOT_SFT = refused("sft_target_column is the SFT stage's; this stage does not read it")


def with_common_rules(stage_rules: Mapping[str, Rule]) -> dict[str, Rule]:
    """A stage's own rules on top of the ones every stage shares (the stage's win).

    Example:
        >>> with_common_rules(SFT_KEYS)["sft_target_column"].kind, with_common_rules(DPO_KEYS)["sft_target_column"].kind
        ('used', 'refused')
    """
    rules = {**TRAINER_USED, **TRAINER_REFUSED, **CUDA_ONLY, **MODEL, **RLFT, **COMMON_TRL, **stage_rules}
    rules.setdefault("sft_target_column", NOT_SFT)
    return rules
