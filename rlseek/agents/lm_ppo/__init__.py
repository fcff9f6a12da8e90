"""lm-ppo: PPO for online RLHF on causal language models, with KL and entropy control."""
