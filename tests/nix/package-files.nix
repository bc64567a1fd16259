# The nixpkgs packages the flake uses, with the files of the real packages
# that the images and the flake point into. One table for the stand-ins of
# tests/nix (realImages) and of the stub nixpkgs in tests/nix-flake, so a
# definition linking a file the real package lacks fails in both.
{
  redis = [
    "bin/redis-server"
    "bin/redis-cli"
    "bin/redis-benchmark"
    "bin/redis-check-aof"
    "bin/redis-check-rdb"
    "bin/redis-sentinel"
  ];
  nginx = [ "bin/nginx" ];
  qdrant = [ "bin/qdrant" ];
  onnxruntime = [ "lib/libonnxruntime.so" ];
  cacert = [ "etc/ssl/certs/ca-bundle.crt" ];
  busybox = [ "bin/busybox" ];
  nodejs = [
    "bin/node"
    "bin/npm"
    "bin/npx"
  ];
}
