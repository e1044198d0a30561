#!/usr/bin/env bash
# Prepare Mosquitto's dynamic-security JSON so owntracks-cert-bot can end revoked sessions.
# Idempotent: safe to run again; it only ever tightens the file. See deploy/README.md.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: dynsec-init.sh [-a ADMIN_CN] [-o OWNER] [JSON_FILE]

Creates (or fixes up) the dynamic-security plugin's JSON file:
  * the dynsec admin is the certificate identity ADMIN_CN (default: otcert-admin; must equal
    OTCERT_BROKER_ADMIN_CN) and has no password, so only its client certificate logs it in;
  * on a new file, the admin role may only use $CONTROL/dynamic-security/# (dynsec init would
    also let it read every topic);
  * defaultACLAccess publishClientReceive is set to false (dynsec init allows it, which would
    let anyone stored in dynsec read every topic);
  * the folder and file belong to OWNER (default: mosquitto; "" skips chown) with modes
    0700/0600: the plugin saves through a ".new" file and rename, so it needs the folder.

JSON_FILE defaults to /var/lib/mosquitto/dynsec/dynamic-security.json. Run it while Mosquitto
is stopped (the plugin rewrites the file from memory), then enable the two plugin lines in
mosquitto.conf and start Mosquitto.
USAGE
}

admin_cn="otcert-admin"
owner="mosquitto"
while getopts ":a:o:h" option; do
    case "$option" in
        a) admin_cn="$OPTARG" ;;
        o) owner="$OPTARG" ;;
        h) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ "$#" -gt 1 ]; then usage >&2; exit 2; fi
json_file="${1:-/var/lib/mosquitto/dynsec/dynamic-security.json}"

if ! [[ "$admin_cn" =~ ^[a-z0-9][a-z0-9_.-]{0,63}$ ]]; then
    echo "dynsec-init: admin CN '$admin_cn' is not a valid MQTT username" >&2
    exit 2
fi
if [ -n "$owner" ] && ! id -u "$owner" >/dev/null 2>&1; then
    echo "dynsec-init: user '$owner' does not exist (use -o USER, or -o '' to skip chown)" >&2
    exit 2
fi
if pgrep -x mosquitto >/dev/null 2>&1; then
    echo "dynsec-init: note: a mosquitto process is running; if it uses $json_file, stop it" \
         "first or it will overwrite these changes" >&2
fi

folder="$(dirname -- "$json_file")"
mkdir -p -- "$folder"
chmod 0700 -- "$folder"

if [ ! -e "$json_file" ]; then
    # The password is random and never shown: the certificate listener ignores passwords, and
    # the next step removes it anyway. (mosquitto_ctrl exits 0 even when it refuses to
    # overwrite, hence the existence check above.)
    password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
    mosquitto_ctrl dynsec init "$json_file" "$admin_cn" "$password" >/dev/null
    fresh=1
else
    fresh=0
fi

# JSON edit without jq: Python's standard library is on every host that runs the bot.
python3 - "$json_file" "$admin_cn" "$fresh" <<'PYTHON'
import json
import os
import sys

path, admin_cn, fresh = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
with open(path, encoding="utf-8") as handle:
    data = json.load(handle)

control = "$CONTROL/dynamic-security/#"
control_acls = [
    {"acltype": acltype, "topic": control, "allow": True}
    for acltype in ("publishClientSend", "publishClientReceive", "subscribePattern",
                    "unsubscribePattern")
]
roles = data.setdefault("roles", [])
admin_role = next((r for r in roles if r.get("rolename") == "admin"), None)
if admin_role is None:
    roles.append({"rolename": "admin", "acls": control_acls})
elif fresh:
    admin_role["acls"] = control_acls

clients = data.setdefault("clients", [])
admin = next((c for c in clients if c.get("username") == admin_cn), None)
if admin is None:
    admin = {"username": admin_cn, "roles": []}
    clients.append(admin)
if not any(r.get("rolename") == "admin" for r in admin.setdefault("roles", [])):
    admin["roles"].append({"rolename": "admin"})
admin["textName"] = "owntracks-cert-bot (certificate identity)"
admin.pop("disabled", None)
for secret in ("password", "salt", "iterations"):
    admin.pop(secret, None)

data.setdefault("defaultACLAccess", {})["publishClientReceive"] = False

tmp = f"{path}.init-tmp"
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as handle:
    json.dump(data, handle, indent=2)
    handle.write("\n")
os.replace(tmp, path)
PYTHON

chmod 0600 -- "$json_file"
if [ -n "$owner" ]; then
    chown "$owner:$(id -gn "$owner")" -- "$folder" "$json_file"
fi
echo "dynsec-init: $json_file ready (admin '$admin_cn', publishClientReceive false)"
