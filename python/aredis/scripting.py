"""Script: EVALSHA with a NOSCRIPT fallback, on a client or a pipeline."""
import hashlib

from .exceptions import NoScriptError


class Script:
    def __init__(self, registered_client, script):
        self.registered_client = registered_client
        self.script = script
        if isinstance(script, str):
            script = script.encode("utf-8")
        self.sha = hashlib.sha1(script).hexdigest()

    def execute(self, keys=(), args=(), client=None):
        """Run the script: an awaitable of its reply. With a pipeline as
        client, EVALSHA is queued and the script is loaded before the
        pipeline executes."""
        client = client if client is not None else self.registered_client
        keys, args = list(keys), list(args)
        from .client import Pipeline
        if isinstance(client, Pipeline):
            client._scripts.append(self)
            return client.evalsha(self.sha, len(keys), *(keys + args))
        return self._run(client, keys, args)

    # The documentation names it both ways: execute (the release notes)
    # and register (the scripting section).
    __call__ = register = execute

    async def _run(self, client, keys, args):
        try:
            return await client.evalsha(self.sha, len(keys), *(keys + args))
        except NoScriptError:
            self.sha = await client.script_load(self.script)
            return await client.evalsha(self.sha, len(keys), *(keys + args))
