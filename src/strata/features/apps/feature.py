"""The application layer as a strata feature: templates and brand voices (two layers), the
response log that feedback refers to (a ``TurnCompleted`` subscriber), ``/v1/templates``,
``/v1/voices``, ``/v1/feedback`` and ``strata template|voice|feedback``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from strata.core.feature import Feature

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

    from strata.core.kernel import Kernel


class Apps:
    """The apps feature's runtime in one process."""

    def __init__(self, kernel: Kernel) -> None:
        from strata.features.apps.layers import ResponseLog, TemplateLayer, VoiceLayer
        from strata.features.apps.store import AppStore
        from strata.features.apps.templates import TemplateRegistry

        settings = kernel.settings
        self.store = AppStore(settings.store("apps"))
        folder = settings.dialogue.templates_dir or settings.home / "templates"
        self.templates = TemplateRegistry(folder, self.store)
        self.response_log = ResponseLog(self.store)
        kernel.service.add_layer(TemplateLayer(self.templates, self.store, settings.dialogue))
        kernel.service.add_layer(VoiceLayer(self.store, settings.dialogue))
        kernel.events.subscribe(self.response_log)

    async def shutdown(self) -> None:
        await self.response_log.flush()
        self.store.close()


class AppsFeature(Feature):
    name = "apps"

    def build(self, kernel: Kernel) -> Apps:
        return Apps(kernel)

    def router(self) -> APIRouter:
        from strata.features.apps.routes import router

        return router

    def commands(self) -> Sequence[click.Command]:
        from strata.features.apps.cli import feedback, template, voice

        return [template, voice, feedback]


feature = AppsFeature()
