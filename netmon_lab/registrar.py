"""The lab's Kamailio registrar config: an operator's own kamailio.cfg, netmon's snippet included.

One template for the demo (`netmon_lab.sip_rooms`) and the tests (tests/registrar_peer.py), so
both run the same registrar: usrloc, registrar and digest auth (`pv_auth_check` against the
passwords in an htable: no database server), SIP on a loopback UDP port, and JSON-RPC on a
loopback TCP port through deploy/kamailio/netmon-registrar.cfg, included exactly as the
snippet's own comments tell an operator to. A REGISTER with a wrong password gets "401
Unauthorized", one for a user it does not know "403 Forbidden", both recorded in the
`regfail` htable by the snippet's routes.

The snippet ships inside netmon_lab as package data (`data/netmon-registrar.cfg`, a git
symlink to the deploy file: one file), so an installed netmon finds it too.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import socket
import sysconfig
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from importlib import resources
from pathlib import Path

import aiohttp

from collectors.registrar.kamailio import parse_ul_dump, rpc_request, rpc_result

SNIPPET = "netmon-registrar.cfg"

LAB_CONFIG = """#!KAMAILIO
# The lab's registrar: an operator's own kamailio.cfg, in a few lines.
#!define NETMON_RPC_PORT {rpc_port}
{rpc_auth}
{media_relay}
debug=2
log_stderror=yes
children=2
tcp_children=2
auto_aliases=no
listen=udp:127.0.0.1:{sip_port}
listen=tcp:127.0.0.1:{rpc_port}
mpath="{modules}/"

loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "siputils.so"
loadmodule "textops.so"
#!ifdef LAB_MEDIA_RELAY
loadmodule "rtpengine.so"
modparam("rtpengine", "rtpengine_sock", LAB_MEDIA_RELAY)
modparam("rtpengine", "rtpengine_tout_ms", 2000)
modparam("rtpengine", "rtpengine_retr", 1)
#!endif

# Short registrations for tests: a contact lives as long as the UA asks (down to 1 s), and
# the timer removes expired ones every second.
modparam("usrloc", "timer_interval", 1)
modparam("registrar", "min_expires", 1)
modparam("registrar", "default_expires", 30)

include_file "{snippet}"

modparam("htable", "htable", "passwd=>size=8;")
event_route[htable:mod-init] {{
{passwords}}}

request_route {{
    if ($rm != "REGISTER") {{
        route(CALLS);
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    if ($sht(passwd=>$tU) == $null) {{
        $var(netmon_refusal) = "403 Forbidden";
        route(NETMON_REGFAIL);
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    if (!pv_auth_check("$td", "$sht(passwd=>$tU)", "0", "1")) {{
        $var(rc) = $rc;
        if ($var(rc) == -2 || $var(rc) == -8) {{
            $var(netmon_refusal) = "401 Unauthorized";
            route(NETMON_REGFAIL);
        }}
        auth_challenge("$td", "0");
        exit;
    }}
    if (!save("location")) {{
        sl_reply_error();
        exit;
    }}
    route(NETMON_REGOK);
}}

# Calls between registered user agents: an INVITE goes to the contact its AoR registered, its
# CANCEL after it; the INVITE is record-routed, so the dialog's ACK and BYE pass here too (the
# media relay hears of the call's end). Anything else falls through to the 405 above.
route[CALLS] {{
    if (!is_method("INVITE|ACK|BYE|CANCEL")) return;
    if (has_totag()) {{
        if (loose_route()) {{
            route(MEDIA);
            t_relay();
        }} else if (is_method("ACK")) {{
            if (t_check_trans()) t_relay();
        }} else {{
            sl_send_reply("404", "Not Here");
        }}
        exit;
    }}
    if (is_method("CANCEL|ACK")) {{
        if (t_check_trans()) t_relay();
        exit;
    }}
    t_check_trans();
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    record_route();
    route(MEDIA);
    t_on_reply("MEDIA");
    if (!t_relay()) sl_reply_error();
    exit;
}}

# The lab's media relay (when configured) rewrites each SDP to its own ports: offer, answer,
# delete on BYE and CANCEL (rtpengine's "ng" protocol, spoken by netmon_lab.media_relay).
route[MEDIA] {{
#!ifdef LAB_MEDIA_RELAY
    if (has_body("application/sdp") || is_method("BYE|CANCEL")) rtpengine_manage();
#!else
    return;
#!endif
}}

onreply_route[MEDIA] {{
#!ifdef LAB_MEDIA_RELAY
    if (has_body("application/sdp")) rtpengine_manage();
#!else
    return;
#!endif
}}
"""


def snippet() -> AbstractContextManager[Path]:
    """The shipped snippet as a file kamailio can include, for as long as the context lasts
    (the file itself when netmon_lab is installed as files, as pip does; a temporary copy
    otherwise)."""
    return resources.as_file(resources.files("netmon_lab").joinpath("data", SNIPPET))


def kamailio_program() -> str | None:
    # kamailio lives in /usr/sbin, which a non-root PATH may lack.
    return shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/sbin")


def kamailio_modules() -> Path | None:
    """Where this machine's Kamailio keeps its modules (Debian's multiarch path first)."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    candidates = [
        Path("/usr/lib") / multiarch / "kamailio" / "modules",
        Path("/usr/lib64/kamailio/modules"),
        Path("/usr/lib/kamailio/modules"),
    ]
    return next((path for path in candidates if (path / "usrloc.so").is_file()), None)


def rpc_authorization(user: str, password: str) -> str:
    """The Authorization header value the RPC demands when it is given one (basic auth)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def quoted(value: str) -> str:
    """`value` as a kamailio.cfg string literal; the config language has no escapes."""
    for forbidden in ('"', "\\", "\n", "\r"):
        if forbidden in value:
            raise ValueError(f"no {forbidden!r} in a kamailio.cfg string")
    return f'"{value}"'


def render_config(
    *,
    sip_port: int,
    rpc_port: int,
    users: Mapping[str, str],
    modules: Path,
    snippet: Path,
    authorization: str | None = None,
    media_relay: int | None = None,
) -> str:
    """The lab's kamailio.cfg: SIP on udp 127.0.0.1:sip_port, the RPC on tcp
    127.0.0.1:rpc_port, `users` (user -> password) the only ones allowed to register, and the
    RPC behind `authorization` (an Authorization header value) when given; INVITEs to a
    registered user routed to its contact, their SDP through the media relay whose control
    port (rtpengine's ng protocol, udp 127.0.0.1) is `media_relay` when given."""
    for user in users:
        quoted(user)
        if not user or any(c in user for c in " \t>)$"):
            raise ValueError(f"{user!r}: not a user name the htable key can hold")
    passwords = "".join(
        f"    $sht(passwd=>{user}) = {quoted(password)};\n" for user, password in users.items()
    )
    auth_define = (
        "" if authorization is None else f"#!define NETMON_RPC_AUTH {quoted(authorization)}"
    )
    return LAB_CONFIG.format(
        rpc_port=rpc_port,
        rpc_auth=auth_define,
        media_relay=(
            "" if media_relay is None else f'#!define LAB_MEDIA_RELAY "udp:127.0.0.1:{media_relay}"'
        ),
        sip_port=sip_port,
        modules=modules,
        snippet=snippet,
        passwords=passwords or "    $var(none) = 0;\n",
    )


# -- what the lab's programs need around the registrar: free ports, their files, who is in -----


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_kamailio(config: Path, text: str, runtime: Path) -> None:
    """Blocking: run it in a thread."""
    runtime.mkdir(exist_ok=True)
    config.write_text(text)


def write_baresip(confdir: Path, config: str, accounts: str) -> None:
    """Blocking: run it in a thread."""
    confdir.mkdir(exist_ok=True)
    (confdir / "config").write_text(config)
    (confdir / "accounts").write_text(accounts)


async def registered_aors(http: aiohttp.ClientSession, rpc_url: str) -> set[str]:
    """The AoRs with a live contact at the lab registrar now (its `ul.dump`)."""
    async with (
        asyncio.timeout(5),
        http.post(rpc_url, data=rpc_request("ul.dump", 1)) as response,
    ):
        response.raise_for_status()
        document = await response.json(content_type=None)
    return {c.aor for c in parse_ul_dump(rpc_result(document, "ul.dump"), time.time())}
