"""Channel outputs, one backend per module of this package (``base.Output``), found by ``get_output``.

A new output is a module here whose ``OUTPUT`` is its backend, and its choice on ``Channel.Output``.
"""

import pkgutil
from importlib import import_module

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from playout.outputs.base import Output
from playout.outputs.file import file_output_path

__all__ = ["OUTPUTS", "Output", "clean_output_settings", "file_output_path", "get_output"]

OUTPUTS: dict[str, Output] = {
    backend.name: backend
    for backend in (import_module(f"{__name__}.{module.name}").OUTPUT
                    for module in pkgutil.iter_modules(__path__) if module.name != "base")
}


def get_output(output_type: str) -> Output:
    """Return the backend of ``output_type``; ValidationError if the station has none."""
    try:
        return OUTPUTS[output_type]
    except KeyError:
        raise ValidationError(_("Unknown output %(output)s."), code="unknown_output",
                              params={"output": output_type}) from None


def clean_output_settings(output_type: str, given) -> dict:
    """Return the settings of an output with their defaults filled in; ValidationError naming every bad one."""
    return get_output(output_type).clean(given)
