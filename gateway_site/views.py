from django.http import JsonResponse
from django.utils import timezone


def health(request):
    """Liveness: the process answers. Readiness (database, cache) is /ready."""
    return JsonResponse({"status": "healthy", "timestamp": timezone.now().isoformat()})
