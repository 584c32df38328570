from rest_framework import pagination


class StationPagination(pagination.PageNumberPagination):
    """Pages of ``page_size`` rows (default 50, at most 500)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
