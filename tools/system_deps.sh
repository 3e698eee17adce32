#!/usr/bin/env bash
# Installs the Debian packages the GUI (Qt xcb, OpenGL), the GUI tests (Xvfb) and the MQTT tests
# (the mosquitto broker) need, when they are missing and we are root. Otherwise prints the exact
# command and fails, before any long pip install starts.
set -eu
pkgs="mosquitto xvfb xauth libgl1 libegl1 libgl1-mesa-dri libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0"
command -v dpkg-query >/dev/null 2>&1 || { echo "system_deps: not a Debian-based system; make sure Xvfb and Qt's xcb libraries are installed"; exit 0; }
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# --tests: also Blender, which the export tests open the BVH and glTF files with. Optional and
# best effort (a large package): when it cannot be installed those checks are skipped, saying why.
if [ "${1:-}" = "--tests" ] && ! command -v blender >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "system_deps: installing blender (for the export tests; optional)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends blender >/dev/null; } \
      || echo "system_deps: could not install blender; the Blender checks of the exports will be skipped"
  else
    echo "system_deps: blender is not installed; the Blender checks of the exports will be skipped (sudo apt-get install blender)"
  fi
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "system_deps: installing$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  echo "system_deps: missing Debian packages:$missing"
  echo "system_deps: install them first (as root), then run make again:"
  echo "  sudo apt-get install$missing"
  exit 1
fi
