"""Scrape a Prometheus text endpoint on 127.0.0.1 and read samples from it."""
from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One scrape's samples: ``value(name, **labels)`` sums the samples that match."""

    def __init__(self, text: str):
        self.text = text
        families = list(text_string_to_metric_families(text))
        self.samples = [s for family in families for s in family.samples]
        #: every metric family served, with or without samples (counters without ``_total``)
        self.families = {family.name for family in families}

    def value(self, name: str, **labels: str) -> float:
        matches = [s.value for s in self.samples if s.name == name
                   and all(s.labels.get(k) == v for k, v in labels.items())]
        return sum(matches)

    def has(self, name: str) -> bool:
        return any(s.name == name for s in self.samples)

    def serves(self, name: str) -> bool:
        """The family ``name`` (``_total`` or not) is served, maybe without samples yet."""
        return name in self.families or name.removesuffix('_total') in self.families


async def scrape(url: str) -> Scrape:
    """GET ``url`` (status 200) and parse it."""
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 200, response.status
            return Scrape(await response.text())
