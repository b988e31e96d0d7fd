"""DRF's JSON parser, through likes.http.parse_json: bad JSON is always a 400."""

from rest_framework import exceptions, parsers

from likes.parsing import parse_json


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", "utf-8")
        try:
            return parse_json(stream.read().decode(encoding))
        except (ValueError, UnicodeDecodeError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
