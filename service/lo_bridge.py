"""A warm LibreOffice: one soffice process kept running, driven over UNO.

This file is run by the system Python that has LibreOffice's `uno` module (Debian's
python3-uno), not by the service's interpreter, so it imports nothing but the standard
library and uno. service/convert.py starts it, sends one JSON request per line on stdin
({"docx": [paths], "outdir": path, "destinations": bool}; destinations: bookmarks
become named destinations in the PDF) and reads one JSON answer per line on stdout
({"ok": true, "pdfs": [paths]} or {"ok": false, "error": "..."}). The first line it prints
says it is ready. It exits when stdin closes. It runs under service/lo_guard.py, whose
process group holds it and soffice: killing the group stops all of them, and the guard
kills the group if the worker dies.
"""

import json
import os
import subprocess
import sys
import time

import uno  # noqa: E402  (provided by python3-uno)
from com.sun.star.beans import PropertyValue  # noqa: E402


def prop(name, value):
    p = PropertyValue()
    p.Name, p.Value = name, value
    return p


def main():
    soffice, profile, pipe = sys.argv[1:4]
    office = subprocess.Popen(
        [soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--invisible", "--nologo", "--norestore",
         "--nodefault", "--nolockcheck", f"--accept=pipe,name={pipe};urp;StarOffice.ComponentContext"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    ctx, deadline = None, time.monotonic() + 60
    while ctx is None:
        try:
            ctx = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
        except Exception:
            if office.poll() is not None or time.monotonic() > deadline:
                print(json.dumps({"ready": False, "error": f"soffice did not start (exit {office.poll()})"}),
                      flush=True)
                return 1
            time.sleep(0.1)
    desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
    print(json.dumps({"ready": True, "pid": office.pid}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        try:
            pdfs = []
            for src in req["docx"]:
                doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(src), "_blank", 0,
                                                   (prop("Hidden", True), prop("ReadOnly", True)))
                try:
                    out = os.path.join(req["outdir"], os.path.splitext(os.path.basename(src))[0] + ".pdf")
                    options = [prop("FilterName", "writer_pdf_Export")]
                    if req.get("destinations"):
                        data = (prop("ExportBookmarksToPDFDestination", True),)
                        options.append(prop("FilterData", uno.Any("[]com.sun.star.beans.PropertyValue", data)))
                    doc.storeToURL(uno.systemPathToFileUrl(out), tuple(options))
                    pdfs.append(out)
                finally:
                    doc.close(True)
            print(json.dumps({"ok": True, "pdfs": pdfs}), flush=True)
        except Exception as exc:
            print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}), flush=True)
    try:
        desktop.terminate()
    except Exception:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
