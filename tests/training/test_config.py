import pytest

from gptft.errors import ConfigError
from gptft.training.config import TrainConfig


def test_defaults_are_the_papers_fine_tuning_recipe():
    recipe = TrainConfig()
    assert (recipe.lr, recipe.betas, recipe.eps, recipe.weight_decay) == (6.25e-5, (0.9, 0.999), 1e-8, 0.01)
    assert (recipe.batch_size, recipe.epochs, recipe.warmup, recipe.schedule) == (32, 3, 0.002, "linear")
    assert (recipe.max_grad_norm, recipe.lm_coef, recipe.classifier_dropout) == (1.0, 0.5, 0.1)


def test_warmup_is_a_fraction_of_the_steps_or_a_number_of_steps():
    assert TrainConfig(warmup=0.002).warmup_steps(10_000) == 20
    assert TrainConfig(warmup=0.002).warmup_steps(100) == 1  # rounded up: some warmup always
    assert TrainConfig(warmup=2000).warmup_steps(50_000) == 2000
    assert TrainConfig(warmup=2000).warmup_steps(500) == 500  # never longer than the run


def test_micro_batch_divides_the_batch_over_accumulation_and_workers():
    recipe = TrainConfig(batch_size=32, grad_accum=4)
    assert recipe.micro_batch_size() == 8 and recipe.micro_batch_size(world_size=2) == 4
    with pytest.raises(ConfigError, match=r"divisible by grad_accum x workers \(12\)"):
        recipe.micro_batch_size(world_size=3)


@pytest.mark.parametrize("changes, message", [
    ({"lr": 0}, "train.lr must be positive"),
    ({"betas": (0.9, 1.0)}, "train.betas"),
    ({"grad_accum": 3}, r"grad_accum \(3\) must divide train.batch_size \(32\)"),
    ({"warmup": 2.5}, "whole number of steps"),
    ({"schedule": "step"}, "'linear' or 'cosine'"),
    ({"patience": -1}, "train.patience must be an integer >= 0"),
    ({"classifier_dropout": 1.0}, "classifier_dropout"),
])
def test_invalid_values_name_the_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)
