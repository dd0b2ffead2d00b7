"""The hints service: the START hint libraries and the policy that decides each episode's next step."""
