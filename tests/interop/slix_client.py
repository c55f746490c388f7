#!/usr/bin/python3
"""A stock slixmpp client (Debian's python3-slixmpp) driving the gateway as a
user of a third-party client would: service discovery, in-band
registration with a data form, jabber:iq:gateway, an ad-hoc command, then a
MUC join of an IRC channel and a message both ways.

It prints one line per step, "ok STEP detail" or "fail STEP reason", and
exits 0 only when every step passed. The Go test
(tests/interop_test.go) starts the servers and plays the IRC side.

Usage: slix_client.py JID PASSWORD HOST PORT GATEWAY ROOM NICK
"""
import asyncio
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

JID, PASSWORD, HOST, PORT, GATEWAY, ROOM, NICK = sys.argv[1:8]
failed = False


def report(ok, step, detail=""):
    global failed
    if not ok:
        failed = True
    print(("ok " if ok else "fail ") + step + (" " + str(detail) if detail else ""), flush=True)


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(JID, PASSWORD)
        for p in ("xep_0004", "xep_0030", "xep_0045", "xep_0050", "xep_0077", "xep_0100", "xep_0199"):
            self.register_plugin(p)
        # Loopback test server without TLS.
        self["feature_mechanisms"].unencrypted_plain = True
        self.add_event_handler("session_start", self.start)
        self.got_irc = asyncio.get_event_loop().create_future()
        self.add_event_handler("groupchat_message", self.on_groupchat)

    def on_groupchat(self, msg):
        if msg["mucnick"] == "slixirc" and not self.got_irc.done():
            self.got_irc.set_result(msg["body"])

    async def start(self, _):
        try:
            await self.run_steps()
        except Exception as e:  # any surprise is a failed step, never a hang
            report(False, "unexpected", repr(e))
        self.disconnect()

    async def run_steps(self):
        self.send_presence()
        await self.get_roster()

        info = await self["xep_0030"].get_info(jid=GATEWAY, timeout=10)
        ids = info["disco_info"]["identities"]
        report(any(i[0] == "gateway" and i[1] == "irc" for i in ids), "disco", ids)

        form_iq = await self["xep_0077"].get_registration(jid=GATEWAY, timeout=10)
        form = form_iq["register"]["form"]
        fields = [f["var"] for f in form["fields"]] if isinstance(form["fields"], list) else list(form["fields"])
        report("nick" in fields, "register-form", fields)
        iq = self.Iq()
        iq["type"] = "set"
        iq["to"] = GATEWAY
        submit = self["xep_0004"].make_form(ftype="submit")
        submit.add_field(var="FORM_TYPE", ftype="hidden", value="jabber:iq:register")
        submit.add_field(var="nick", value=NICK)
        iq["register"].append(submit)
        try:
            await iq.send(timeout=10)
            report(True, "register")
        except (IqError, IqTimeout) as e:
            report(False, "register", e)

        iq = self.Iq()
        iq["type"] = "set"
        iq["to"] = GATEWAY
        q = slixmpp.xmlstream.ET.Element("{jabber:iq:gateway}query")
        p = slixmpp.xmlstream.ET.SubElement(q, "{jabber:iq:gateway}prompt")
        p.text = ROOM.split("%")[0]
        iq.append(q)
        res = await iq.send(timeout=10)
        got = res.xml.find("{jabber:iq:gateway}query/{jabber:iq:gateway}jid")
        report(got is not None and got.text == ROOM, "gateway-translate", got.text if got is not None else res)

        items = await self["xep_0050"].get_commands(jid=GATEWAY, timeout=10)
        nodes = [i[1] for i in items["disco_items"]["items"]]
        report("status" in nodes, "commands", nodes)

        await self["xep_0045"].join_muc_wait(ROOM, NICK, timeout=15, maxstanzas=0)
        report(True, "join")
        self.send_message(mto=ROOM, mbody="hello from slixmpp", mtype="groupchat")
        print("ready", flush=True)  # the IRC side answers now
        body = await asyncio.wait_for(self.got_irc, 15)
        report(body == "hello from irc", "receive", body)


client = Client()
client.connect((HOST, int(PORT)), disable_starttls=True, use_ssl=False)
client.loop.run_until_complete(client.disconnected)
sys.exit(1 if failed else 0)
