"""Training loops: multi-modal pre-training and downstream fine-tuning."""
