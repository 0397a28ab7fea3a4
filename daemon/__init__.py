"""runpod-budget: budget alerting daemon for RunPod GPU pods."""
