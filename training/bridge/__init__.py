"""BioX-Bridge for Tiny-BioMoE (Li et al., 2025): a low-rank prototype bridge from a new modality's features into
the old modality's model, so that a head trained on the old modality runs on the new one."""
