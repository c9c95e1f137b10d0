"""The control socket: ``protocol`` (framing, messages, errors; no asyncio, so ``jobctl`` can
import it), ``server`` (``ControlServer``) and ``api`` (``DaemonAPI``, what the daemon provides).

Nothing is imported here: importing the package must stay as cheap as ``jobctl`` needs."""
