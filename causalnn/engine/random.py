"""Seeding through ``random_state`` only: no global numpy or torch seeds are touched."""
import torch
from sklearn.utils import check_random_state

__all__ = ["make_generator", "spawn_generator"]


def make_generator(random_state):
    """Derive a CPU :class:`torch.Generator` from an sklearn-style ``random_state``.

    The generator drives weight initialisation, the validation split and the batch order,
    so a fixed ``random_state`` makes CPU fits bit-for-bit repeatable. It lives on the CPU
    so that a CPU and a GPU fit start from identical weights and see identical batches.
    """
    rng = check_random_state(random_state)
    seed = int(rng.randint(0, 2**31 - 1))
    return torch.Generator(device="cpu").manual_seed(seed)


def spawn_generator(generator):
    """A new CPU generator seeded by one draw from ``generator``.

    Estimators spawn the stream of the validation split and the batch order *before*
    they draw their initial weights: fits from one ``random_state`` then hold out the
    same rows whatever the network's size, so their validation losses compare (model
    selection by validation loss), and the weights of each size stay repeatable.
    """
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    return torch.Generator(device="cpu").manual_seed(seed)
