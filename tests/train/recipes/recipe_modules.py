"""The recipes are scripts in `train/recipes/` (not a package): load them by path for the tests."""

from __future__ import annotations

import importlib.util
import os
import sys

RECIPES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
                           "train", "recipes")


def load_recipe_module(name: str):
    module_name = f"recipes_test_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, os.path.join(RECIPES_DIR, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
