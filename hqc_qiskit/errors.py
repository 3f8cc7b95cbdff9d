"""Error types users see. Each message names the file, frame and field at fault."""


class HQCError(Exception):
    """Base class of the errors hqc-qiskit raises on purpose (the CLI prints them without a traceback)."""


class DataError(HQCError, ValueError):
    """Bad input data: the message names the file, the frame (0-based) and the field."""

    def __init__(self, path, message: str, frame: int | None = None, field: str | None = None):
        where = [str(path)]
        if frame is not None:
            where.append(f"frame {frame}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}")
        self.path, self.frame, self.field = path, frame, field


class MissingLabelError(DataError):
    """A frame lacks a required label (energy or forces): the file may be structures only."""


class ConfigError(HQCError, ValueError):
    """Invalid run configuration."""


class EngineError(HQCError, RuntimeError):
    """A readout engine asked to do something it cannot (e.g. second derivatives through Qiskit)."""
