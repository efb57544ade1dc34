"""A PEP 517 build backend for the blender-jobs Python client, standard library only.

Why not setuptools: pip builds a package in an isolated environment and downloads the backend
named in pyproject.toml into it first. This backend is in the source tree (``backend-path``) and
needs nothing else, so ``pip install ./client-examples/python`` works without a package index
(offline, or where PyPI is not reachable), on any Python 3.9+.

It builds a pure-Python wheel of the modules listed in ``[tool.blender-jobs-build] modules``, with
the ``[project]`` metadata of pyproject.toml and its console scripts, an sdist, and an editable
wheel (PEP 660: a .pth file naming the source folder).
"""

import base64
import csv
import hashlib
import io
import json
import os
import re
import tarfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

__all__ = ["build_wheel", "build_sdist", "build_editable", "get_requires_for_build_wheel",
           "get_requires_for_build_sdist", "get_requires_for_build_editable", "prepare_metadata_for_build_wheel",
           "prepare_metadata_for_build_editable"]


# --------------------------------------------------------------------------- pyproject

def _parse_toml_subset(text):
    """The part of TOML pyproject.toml uses: [tables], key = "string" and key = ["strings"],
    comments on their own lines. For Pythons without tomllib (before 3.11)."""
    data, table = {}, None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            table = data
            for part in line[1:-1].strip().split("."):
                table = table.setdefault(part.strip(), {})
            continue
        key, sep, value = line.partition("=")
        if not sep or table is None:
            raise ValueError("pyproject.toml line %d: not understood: %s" % (number, raw))
        try:
            table[key.strip().strip('"')] = json.loads(value.strip())
        except ValueError:
            raise ValueError("pyproject.toml line %d: only strings and lists of strings are supported: %s"
                             % (number, raw))
    return data


def _pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        raw = f.read()
    try:
        import tomllib
    except ImportError:
        return _parse_toml_subset(raw.decode("utf-8"))
    return tomllib.loads(raw.decode("utf-8"))


class _Project(object):
    def __init__(self):
        config = _pyproject()
        self.project = config["project"]
        self.tool = config.get("tool", {}).get("blender-jobs-build", {})
        self.name = self.project["name"]
        self.version = self.project.get("version") or self._version_from(self.tool["version-from"])
        self.modules = list(self.tool["modules"])
        self.dist = re.sub(r"[-_.]+", "_", self.name).lower()  # the file-name form of the name

    @staticmethod
    def _version_from(module):
        with open(os.path.join(ROOT, module + ".py"), encoding="utf-8") as f:
            match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', f.read(), re.M)
        if not match:
            raise ValueError("%s.py has no __version__ = \"...\" line" % module)
        return match.group(1)

    @property
    def dist_info(self):
        return "%s-%s.dist-info" % (self.dist, self.version)

    def metadata(self):
        p = self.project
        lines = ["Metadata-Version: 2.1", "Name: %s" % self.name, "Version: %s" % self.version]
        if p.get("description"):
            lines.append("Summary: %s" % p["description"])
        if p.get("requires-python"):
            lines.append("Requires-Python: %s" % p["requires-python"])
        if isinstance(p.get("license"), str):
            lines.append("License: %s" % p["license"])
        for requirement in p.get("dependencies") or []:
            lines.append("Requires-Dist: %s" % requirement)
        body = ""
        if p.get("readme"):
            lines.append("Description-Content-Type: text/markdown")
            with open(os.path.join(ROOT, p["readme"]), encoding="utf-8") as f:
                body = f.read()
        return ("\n".join(lines) + "\n\n" + body).encode("utf-8")

    def entry_points(self):
        scripts = self.project.get("scripts") or {}
        if not scripts:
            return None
        return ("[console_scripts]\n" + "".join("%s = %s\n" % item for item in sorted(scripts.items()))).encode("utf-8")

    def dist_info_files(self, tag="py3-none-any"):
        files = [("METADATA", self.metadata()),
                 ("WHEEL", ("Wheel-Version: 1.0\nGenerator: blender_jobs_build\nRoot-Is-Purelib: true\nTag: %s\n"
                            % tag).encode("ascii")),
                 ("top_level.txt", "".join(m + "\n" for m in self.modules).encode("ascii"))]
        entry_points = self.entry_points()
        if entry_points:
            files.append(("entry_points.txt", entry_points))
        return files


# --------------------------------------------------------------------------- wheels

def _record_hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return "sha256=" + digest


def _write_wheel(directory, project, contents):
    """contents: [(archive name, bytes)]; adds the dist-info and RECORD. Returns the file name."""
    name = "%s-%s-py3-none-any.whl" % (project.dist, project.version)
    entries = list(contents) + [(project.dist_info + "/" + n, d) for n, d in project.dist_info_files()]
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for arcname, data in entries:
        writer.writerow([arcname, _record_hash(data), len(data)])
    writer.writerow([project.dist_info + "/RECORD", "", ""])
    entries.append((project.dist_info + "/RECORD", record.getvalue().encode("utf-8")))
    # A fixed date keeps the wheel reproducible (zip cannot store dates before 1980).
    stamp = time.gmtime(max(315532800, int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))))[:6]
    path = os.path.join(directory, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for arcname, data in entries:
            info = zipfile.ZipInfo(arcname, date_time=stamp)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    return name


def _module_files(project):
    out = []
    for module in project.modules:
        with open(os.path.join(ROOT, module + ".py"), "rb") as f:
            out.append((module + ".py", f.read()))
    return out


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = _Project()
    return _write_wheel(wheel_directory, project, _module_files(project))


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 660: a wheel whose .pth file puts the source folder on sys.path."""
    project = _Project()
    pth = ("%s\n" % ROOT).encode("utf-8")
    return _write_wheel(wheel_directory, project, [("__editable__.%s.pth" % project.dist, pth)])


def _prepare_metadata(metadata_directory):
    project = _Project()
    folder = os.path.join(metadata_directory, project.dist_info)
    os.makedirs(folder, exist_ok=True)
    for name, data in project.dist_info_files():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    return project.dist_info


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _prepare_metadata(metadata_directory)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return _prepare_metadata(metadata_directory)


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


# --------------------------------------------------------------------------- sdist

def build_sdist(sdist_directory, config_settings=None):
    """The source needed to build the wheel again: pyproject.toml, README.md, the modules and
    this backend (tests, the demo and caches stay out)."""
    project = _Project()
    base = "%s-%s" % (project.dist, project.version)
    name = base + ".tar.gz"
    files = ["pyproject.toml", project.project.get("readme") or "README.md",
             os.path.join("build_backend", os.path.basename(__file__))] + [m + ".py" for m in project.modules]
    pkg_info = project.metadata()
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for relative in files:
            tar.add(os.path.join(ROOT, relative), arcname=base + "/" + relative.replace(os.sep, "/"), recursive=False)
        info = tarfile.TarInfo(base + "/PKG-INFO")
        info.size = len(pkg_info)
        info.mtime = int(time.time())
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(pkg_info))
    return name
