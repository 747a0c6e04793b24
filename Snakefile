# Phase-1 (8k) distillation datasets for a gpt-oss student.
#   snakemake -n phase1_mix_8k_665m        # what would (re)build, and why
#   snakemake -j 20 phase1_mix_8k_665m     # build it
# Terms (source, shard, builder, plan, budget, manifest, mix): README.md.

configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/tokenizer.smk"
include: "rules/synth.smk"


localrules: all


rule all:
    input:
        rules.synth_distill_phase1_high_550m.input,
