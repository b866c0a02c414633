# Sourced by scripts: starts nginx as a WebDAV cache server on loopback (config in
# scripts/remote/nginx-webdav.conf) under $work/nginx, on a free port; sets $nginx_port.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_nginx() {
    nginx_port=${nginx_port:-$(free_port)}
    mkdir -p "$work/nginx/data" "$work/nginx/tmp"
    sed "s|ROOT|$work/nginx|g; s|PORT|$nginx_port|g" "$(dirname "${BASH_SOURCE[0]}")/../remote/nginx-webdav.conf" >"$work/nginx/nginx.conf"
    nginx -c "$work/nginx/nginx.conf" -p "$work/nginx"
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$nginx_port/" && return; sleep 0.1; done
    return 1
}

stop_nginx() {
    [ -f "$work/nginx/nginx.pid" ] && kill "$(cat "$work/nginx/nginx.pid" 2>/dev/null)" 2>/dev/null
    sleep 0.3
}
