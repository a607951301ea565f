"""Inputs that fail before our code runs get the app's sentence, not Gradio's "raised an exception".

Our components (common.Image, Video, File, Dropdown, ...) hand every value on unchecked, so the
request's validation answers it. One step comes before them: Gradio parses each file input's JSON
into its data model (`FileData`, `ImageData`) and a client's `image="garbage"` or `{"path": 5}`
fails there, inside `Blocks.preprocess_data`, with Gradio's generic text. Gradio has no public hook
for that step, so this module wraps that one method of the demo (as queue.py wraps the queue's
push) and `tests/test_app_answers.py` fails if the method is renamed or no longer used.
"""

from __future__ import annotations

import inspect
import logging
import uuid

import gradio as gr

log = logging.getLogger(__name__)


def _failing_input(block_fn, inputs: list):
    """(parameter name, component, value) of the input whose value does not parse as its component's data."""
    try:
        names = list(inspect.signature(block_fn.fn).parameters)
    except (TypeError, ValueError):
        names = []
    for index, (block, value) in enumerate(zip(getattr(block_fn, "inputs", ()), inputs)):
        model = getattr(block, "data_model", None)
        if model is None or value is None:
            continue
        try:
            model.model_validate(value, context={"validate_meta": True})  # as Gradio parses it
        except Exception:  # noqa: BLE001 - any parse failure names this input
            return (names[index] if index < len(names) else f"input {index + 1}"), block, value
    return None


def refusal(name: str, block, value) -> str:
    """The sentence for a value a component cannot take: which input (the endpoint's parameter and the
    page's label), and what it takes."""
    label = str(getattr(block, "label", "") or "").split(":")[0].split("(")[0].strip()
    where = f'"{name}"' + (f" ({label})" if label and label.lower() != name.lower() else "")
    shown = f"{type(value).__name__} {str(value)[:40]!r}"
    if isinstance(block, (gr.Image, gr.Video, gr.File)):
        return f"The {where} input must be a file uploaded to this app (in gradio_client: handle_file(path)); got {shown}."
    return f"The {where} input cannot take {shown}; please check its value."


def answer_component_failures(demo: gr.Blocks) -> bool:
    """Wrap the demo's input parsing: a value no component can take is refused in a sentence, logged with
    a reference. Only API clients send such values (the page sends what its widgets hold), so the
    sentence is a plain gr.Error. False if this Gradio has no such method."""
    preprocess = getattr(demo, "preprocess_data", None)
    if preprocess is None:
        log.warning("this Gradio has no Blocks.preprocess_data to wrap: malformed inputs get Gradio's own text")
        return False

    async def preprocess_data(block_fn, inputs, state, explicit_call=False):
        try:
            return await preprocess(block_fn, inputs, state, explicit_call)
        except gr.Error:
            raise
        except Exception as error:
            failing = _failing_input(block_fn, list(inputs))
            message = refusal(*failing) if failing is not None else (
                "The inputs could not be read: send files with gradio_client's handle_file(path) and each value as "
                "the endpoint's parameters describe (view_api() lists them).")
            reference = uuid.uuid4().hex[:8]
            log.warning("refused an input (reference %s): %s (%s)", reference, message, error)
            raise gr.Error(f"{message} (reference {reference})", print_exception=False) from error

    demo.preprocess_data = preprocess_data
    return True
