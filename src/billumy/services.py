"""What the routes work with: one typed container, built by ``create_app(settings)``.

The app keeps it at ``app.state.services`` (once its lifespan has started them), and routes
reach it through one dependency (``billumy.api.deps.ServicesDep``, or ``services_of(request)``
in the lean routes). A test builds one with fakes where it wants them and puts it there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from billumy.auth import Authenticator
from billumy.cache.base import SharedState
from billumy.cache.limits import FairUse
from billumy.catalog import Catalog
from billumy.conversations import ConversationService
from billumy.drain import Drain
from billumy.engines.remote import EngineClient
from billumy.engines.router import Router
from billumy.inference import InferenceService
from billumy.insights.service import InsightService
from billumy.metrics import Metrics
from billumy.settings import Settings
from billumy.store.base import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    catalog: Catalog
    engine: EngineClient
    router: Router
    auth: Authenticator
    shared_state: SharedState
    fair_use: FairUse
    inference: InferenceService
    insights: InsightService
    conversations: ConversationService
    metrics: Metrics
    drain: Drain
    # The OpenAPI document, rendered on its first request (it never changes while serving).
    openapi_document: dict[str, Any] | None = None
