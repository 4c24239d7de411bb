"""Everything a strata process serves, built once from the settings: the engine, the chat
pipeline, and each feature's stores and layers. The HTTP app and the CLI's in-process client
build the same stack, so a feature behaves alike whichever door a request came in by.

Each feature adds itself here in one place: its store(s) as an attribute, its layer or
dispatcher on the pipeline, and (in ``serve.app``) its REST router.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from strata.config import Settings
from strata.engine import Engine
from strata.pipeline import Pipeline
from strata.routing.feature import Routing

if TYPE_CHECKING:
    from strata.knowledge.base import KnowledgeBase


class Stack:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        from strata.apps import AppStore, ResponseLog, TemplateLayer, TemplateRegistry, VoiceLayer
        from strata.dialogue import SessionMemory, SessionRecorder, SessionStore, Summariser
        from strata.knowledge.grounding import KnowledgeLayer

        self.settings = settings
        self.engine = engine if engine is not None else Engine(settings)
        self.pipeline = Pipeline(self.engine)
        self.routing = Routing(settings, self.engine, self.pipeline)
        # Dialogue: sessions, their rolling summaries and the memory that builds each prompt.
        self.sessions = SessionStore(settings.home / "dialogue.db")
        self.summariser = Summariser(
            self.sessions, self.pipeline, settings.dialogue, self.summary_model
        )
        # Apps: templates, brand voices, the responses given and the feedback on them.
        self.apps = AppStore(settings.home / "apps.db")
        folder = settings.dialogue.templates_dir or settings.home / "templates"
        self.templates = TemplateRegistry(folder, self.apps)
        # Layers run in this order before generation and in reverse after it. The response
        # log and the session recorder go early (their ``after`` sees the answer once the voice
        # has repaired it); knowledge adds its passages to the new message; the memory goes
        # last, to fit everything the others added into the window.
        self.response_log = ResponseLog(self.apps)
        layers = (
            self.response_log,
            SessionRecorder(self.sessions, self.summariser),
            TemplateLayer(self.templates, self.apps, settings.dialogue),
            VoiceLayer(self.apps, self.pipeline, settings.dialogue),
            KnowledgeLayer(lambda: self.knowledge, settings.knowledge, bool(settings.api_keys)),
            SessionMemory(self.sessions, self.engine, settings.dialogue),
        )
        for layer in layers:
            self.pipeline.add_layer(layer)

    @cached_property
    def knowledge(self) -> KnowledgeBase:
        """Opened on first use, so a process that never grounds never touches its file."""
        from strata.knowledge.base import KnowledgeBase

        return KnowledgeBase(self.settings.home, self.settings.knowledge)

    def summary_model(self, chat_model: str) -> str:
        """The model that summarises sessions: configured, else the default, else the chat's."""
        models = self.engine.models
        configured = self.settings.dialogue.summary_model
        for name in (configured, self.settings.default_model, chat_model):
            if name and name in models:
                return name
        return configured or next(iter(models), chat_model)

    async def startup(self) -> None:
        await self.engine.startup()

    async def shutdown(self) -> None:
        await self.response_log.flush()
        await self.summariser.close()
        await self.engine.shutdown()
        self.sessions.close()
        self.apps.close()
        self.routing.close()
        if "knowledge" in self.__dict__:
            self.knowledge.close()
            del self.__dict__["knowledge"]
        if "knowledge" in self.__dict__:
            self.knowledge.close()
            del self.__dict__["knowledge"]
