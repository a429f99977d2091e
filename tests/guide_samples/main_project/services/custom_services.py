"""The developer guide's "Custom Services" services/custom_services.py, copied from the guide unchanged."""
# fmt: off
# ruff: noqa

# services/custom_services.py
import aiohttp
from typing import Dict, Any

class HTTPService:
    """HTTP client service for API calls"""

    def __init__(self, base_url: str = None, timeout: int = 30):
        self.base_url = base_url
        self.timeout = timeout
        self._session = None

    async def initialize(self):
        """Initialize HTTP session"""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def cleanup(self):
        """Cleanup HTTP session"""
        if self._session:
            await self._session.close()

    async def get(self, url: str, **kwargs) -> aiohttp.ClientResponse:
        """Make GET request"""
        if not self._session:
            await self.initialize()

        full_url = f"{self.base_url.rstrip('/')}/{url.lstrip('/')}" if self.base_url else url
        return await self._session.get(full_url, **kwargs)

    async def post(self, url: str, **kwargs) -> aiohttp.ClientResponse:
        """Make POST request"""
        if not self._session:
            await self.initialize()

        full_url = f"{self.base_url.rstrip('/')}/{url.lstrip('/')}" if self.base_url else url
        return await self._session.post(full_url, **kwargs)

class CacheService:
    """Simple in-memory cache service"""

    def __init__(self, ttl: int = 3600):
        self.ttl = ttl
        self._cache = {}
        self._timestamps = {}

    def get(self, key: str) -> Any:
        """Get value from cache"""
        import time

        if key in self._cache:
            if time.time() - self._timestamps[key] < self.ttl:
                return self._cache[key]
            else:
                # Expired
                del self._cache[key]
                del self._timestamps[key]

        return None

    def set(self, key: str, value: Any):
        """Set value in cache"""
        import time

        self._cache[key] = value
        self._timestamps[key] = time.time()

    def clear(self):
        """Clear entire cache"""
        self._cache.clear()
        self._timestamps.clear()

class NotificationService:
    """Service for sending notifications"""

    def __init__(self, webhook_url: str = None):
        self.webhook_url = webhook_url

    async def send_notification(self, message: str, level: str = 'info'):
        """Send notification"""
        if not self.webhook_url:
            print(f"NOTIFICATION [{level.upper()}]: {message}")
            return

        # Implementation for webhook notifications
        import aiohttp

        payload = {
            'message': message,
            'level': level,
            'timestamp': datetime.now().isoformat()
        }

        async with aiohttp.ClientSession() as session:
            try:
                await session.post(self.webhook_url, json=payload)
            except Exception as e:
                print(f"Failed to send notification: {e}")
