"""The commands: the YAML schema and its loader, the fine-tune and pre-train recipes, evaluation and
prediction on exported models, the demo, the environment doctor, and the `gptft` command line.
"""
