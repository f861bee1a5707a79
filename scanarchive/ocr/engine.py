"""OCR for the search index only: the engine protocol and the per-page worker pool.
The words it produces are an OCR document (scanarchive.ocr.document).

A page whose OCR fails or times out is kept with a status and a reason; the
record is archived all the same and flagged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from scanarchive.errors import ScanarchiveError
from scanarchive.ocr.document import PageText


class OcrFailed(ScanarchiveError):
    """OCR of one page failed; the page is flagged, the record still archived."""

    def __init__(self, message: str, *, hint: str | None = None, timed_out: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.timed_out = timed_out


PageSource = Callable[[str], bytes]  # (private temp dir) -> PNG bytes of one page
PageRecogniser = Callable[[int, PageSource], PageText]


def run_pages(pages: Iterable[tuple[int, PageSource]], recognise_page: PageRecogniser, jobs: int) -> list[PageText]:
    """OCR pages in parallel (threads that each wait on one engine process).

    At most 2×jobs pages are in flight, so a 500-page scan does not hold 500
    page images in memory at once.
    """
    results: dict[int, PageText] = {}
    in_flight: list[tuple[int, Future[PageText]]] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="ocr") as pool:
        for number, source in pages:
            in_flight.append((number, pool.submit(recognise_page, number, source)))
            while len(in_flight) >= 2 * max(1, jobs):
                done_number, future = in_flight.pop(0)
                results[done_number] = future.result()
        for done_number, future in in_flight:
            results[done_number] = future.result()
    return [results[n] for n in sorted(results)]
