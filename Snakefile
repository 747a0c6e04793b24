# Phase-1 (8k) distillation datasets for a gpt-oss student.
#   snakemake -n phase1_mix_8k_665m        # what would (re)build, and why
#   snakemake -j 20 phase1_mix_8k_665m     # build it
# Terms (source, shard, builder, plan, budget, manifest, mix): README.md.

configfile: "config.yaml"

report: "rules/captions/workflow.rst"


include: "rules/common.smk"
include: "rules/tokenizer.smk"
include: "rules/validate.smk"
include: "rules/report.smk"
include: "rules/synth.smk"
include: "rules/code.smk"
include: "rules/math.smk"
include: "rules/chat.smk"
include: "rules/merge.smk"


localrules: all


rule all:
    input:
        rules.synth_distill_phase1_high_550m.input,
        rules.code_opencodeinstruct_55m.input,
        rules.math_nemotron_v2_low_55m.input,
        rules.helpfulness_oasst2_15m.input,
        rules.phase1_mix_8k_665m.input,
