"""A form refused for something the person can put right: its page drawn again in place, with
the refusal as its one error and the form as posted, or as a new page has it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.responses import Response

from broker.webauth import Flash, refused_in_place


class _Page:
    """A page that keeps what it was drawn with."""

    def __init__(self) -> None:
        self.drawn: list[tuple[int, list[Flash], dict[str, Any] | None]] = []

    async def draw(
        self, *, status: int, errors: Sequence[Flash], typed: dict[str, Any] | None
    ) -> Response:
        self.drawn.append((status, list(errors), typed))
        return Response(status_code=status)


async def test_the_page_is_drawn_again_400_with_the_error_and_the_form_as_posted() -> None:
    page = _Page()
    typed = {"reason": "as typed ", "flags": {"f1"}}
    answer = await refused_in_place(page.draw, typed)("Give a reason.", field="reason")
    assert answer.status_code == 400
    assert page.drawn == [(400, [Flash.error("Give a reason.", field="reason")], typed)]


async def test_a_status_is_kept_and_fresh_draws_the_form_as_a_new_page_has_it() -> None:
    page = _Page()
    refused = refused_in_place(page.draw, {"reason": "as typed"})
    answer = await refused("Sent already; nothing more was sent.", status=409, fresh=True)
    assert answer.status_code == 409
    assert page.drawn == [(409, [Flash.error("Sent already; nothing more was sent.")], None)]
