"""The API's JSON renderer: Decimals as exact JSON numbers (:func:`volbal.renderers.dumps_exact`).

Apart from :mod:`volbal.renderers` so that importing those helpers does not load DRF's
renderers (and with them its serializers)."""

from __future__ import annotations

from rest_framework.renderers import JSONRenderer

from volbal.renderers import dumps_exact


class DecimalJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return dumps_exact(data)
