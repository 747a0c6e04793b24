# Phase-1 (8k) distillation datasets for a gpt-oss student.
#   snakemake -n phase1_mix_8k_665m        # what would (re)build, and why
#   snakemake -j 20 phase1_mix_8k_665m     # build it
# Terms (source, shard, builder, plan, budget, manifest, mix): README.md.

configfile: "config.yaml"

report: "rules/captions/workflow.rst"


include: "rules/common.smk"
include: "rules/tokenizer.smk"
include: "rules/decontam.smk"
include: "rules/validate.smk"
include: "rules/report.smk"
include: "rules/synth.smk"
include: "rules/code.smk"
include: "rules/math.smk"
include: "rules/chat.smk"
include: "rules/merge.smk"
include: "rules/handoff.smk"
include: "rules/teacher.smk"


localrules: all


rule all:
    """Every dataset and the mix (each builder's raw input is required); the default target."""
    default_target: True
    input:
        all_raw_inputs(("synth", "code", "math", "chat")),
        builder_target_input("synth", "synth_distill_phase1_high_550m"),
        builder_target_input("code", "code_opencodeinstruct_55m"),
        builder_target_input("math", "math_nemotron_v2_low_55m"),
        builder_target_input("chat", "helpfulness_oasst2_15m"),
        rules.merge_mix.output,
        checked("mix"),
        [checked(name) for name in ("synth", "code", "math", "chat")],
