"""The files the local Bot API knows, and the Telegram objects (PhotoSize, Document, ...) for them.

Workers send photos of payslips and contracts; the bot fetches them with getFile and passes
them on by file_id. Fake files are only a size and a seed, so a benchmark with hundreds of
photos costs no memory; the bytes are made up when someone downloads them. Files the bot
uploads keep their real bytes, so tests can read what the bot sent.
"""

import hashlib
import itertools
import mimetypes
from dataclasses import dataclass, field

# kind -> (folder in file_path, default extension)
_STORAGE = {
    "photo": ("photos", ".jpg"),
    "document": ("documents", ".bin"),
    "voice": ("voice", ".oga"),
    "video": ("videos", ".mp4"),
    "sticker": ("stickers", ".webp"),
}
_PHOTO_SIZES = ((90, 68), (320, 240), (1280, 960))


@dataclass
class FakeFile:
    file_id: str
    file_unique_id: str
    size: int
    kind: str | None = None  # None until an upload is used as a photo, document, ...
    meta: dict = field(default_factory=dict)  # the Telegram object describing the file
    path: str | None = None
    name: str | None = None  # the uploaded file name
    mime_type: str | None = None
    content: bytes | None = None  # real bytes, for uploads

    def read(self) -> bytes:
        if self.content is not None:
            return self.content
        pattern = hashlib.sha256(self.file_unique_id.encode()).digest()
        return (pattern * (self.size // len(pattern) + 1))[: self.size]


class FileStore:
    """Every file by file_id and by file_path, the two ways the Bot API names a file."""

    def __init__(self) -> None:
        self._by_id: dict[str, FakeFile] = {}
        self._by_path: dict[str, FakeFile] = {}
        self._numbers = itertools.count(1)

    def get(self, file_id: str) -> FakeFile | None:
        return self._by_id.get(file_id)

    def at(self, path: str) -> FakeFile | None:
        return self._by_path.get(path)

    def content(self, file_id: str) -> bytes:
        """The bytes behind a file_id, for tests checking what the bot uploaded."""
        return self._by_id[file_id].read()

    def upload(self, content: bytes, name: str | None, mime_type: str | None) -> FakeFile:
        """A file the bot sent in a multipart request; it becomes a photo, document... on use."""
        return self._new(len(content), name=name, mime_type=mime_type, content=content)

    def from_url(self) -> FakeFile:
        """A file Telegram would download from the URL the bot gave; nothing is fetched here."""
        return self._new(50_000)

    def assign(self, file: FakeFile, kind: str, **details: object) -> dict:
        """Give a fresh file its kind and return the Telegram object describing it."""
        folder, extension = _STORAGE[kind]
        if file.name and "." in file.name:
            extension = "." + file.name.rsplit(".", 1)[1]
        file.kind = kind
        file.path = f"{folder}/{file.file_unique_id}{extension}"
        self._by_path[file.path] = file
        file.meta = {
            "file_id": file.file_id,
            "file_unique_id": file.file_unique_id,
            "file_size": file.size,
        }
        if kind == "photo":
            file.meta.update(width=1280, height=960)
        elif kind == "document":
            name = file.name or f"file{extension}"
            file.meta.update(
                file_name=name,
                mime_type=file.mime_type
                or mimetypes.guess_type(name)[0]
                or "application/octet-stream",
            )
        elif kind == "voice":
            file.meta.update(duration=details.get("duration") or 1, mime_type="audio/ogg")
        elif kind == "video":
            file.meta.update(
                width=1280, height=720, duration=details.get("duration") or 1, mime_type="video/mp4"
            )
        elif kind == "sticker":
            file.meta.update(
                width=512,
                height=512,
                is_animated=False,
                is_video=False,
                type="regular",
                emoji=details.get("emoji"),
            )
        return file.meta

    def new(self, kind: str, size: int, **details: object) -> dict:
        """A fake file a person sends; returns its Telegram object."""
        return self.assign(
            self._new(
                size, name=details.pop("file_name", None), mime_type=details.pop("mime_type", None)
            ),
            kind,
            **details,
        )

    def new_photo(self, size: int) -> list[dict]:
        """A photo as Telegram delivers it: the same picture in growing sizes, each its own file."""
        sizes = []
        for width, height in _PHOTO_SIZES:
            photo = self.new("photo", max(size * width // _PHOTO_SIZES[-1][0], 1))
            photo.update(width=width, height=height)
            sizes.append(photo)
        return sizes

    def _new(self, size: int, **fields: object) -> FakeFile:
        number = next(self._numbers)
        file = FakeFile(f"LOCAL-file-{number}", f"LOCAL-unique-{number}", size, **fields)
        self._by_id[file.file_id] = file
        return file
