"""A task model: one GPT backbone and one head, over the `(B, S, T)` batch shape every task shares."""

from mindspore import nn

from .model import GPT


class TaskModel(nn.Cell):
    """Backbone plus head. Calling it on ids `(B, S, T)` and extract positions `(B, S)` returns the task logits.

    All S sequences of all B examples go through the backbone in one call, so similarity's two orderings
    and multiple choice's K answers cost one pass, not S.

    Args:
        backbone: a `GPT` whose embedding already has rows for the task tokens.
        head: any cell with `construct(hidden (B, S, T, C), positions (B, S)) -> logits`.

    Example:
        >>> model = TaskModel(GPT.from_pretrained("openai-gpt"), ClassificationHead(768, 2))
        >>> logits = model(ids, positions)      # (B, 2)
        >>> lm = model.backbone.lm_logits(model.hidden(ids))   # (B, S, T, vocab), when needed
    """

    def __init__(self, backbone: GPT, head: nn.Cell):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.set_train(False)  # keep the compile phase in step with the mode (see GPT.__init__)

    def hidden(self, ids):
        """Final hidden states `(B, S, T, C)` of ids `(B, S, T)`."""
        B, S, T = ids.shape
        return self.backbone(ids.reshape(B * S, T)).reshape(B, S, T, -1)

    def construct(self, ids, positions):
        return self.head(self.hidden(ids), positions)
