# imageFromDefinition: an images/<name>.toml definition -> buildImage.
#
# The definitions are data shared with the host builder (ocipack host); what
# every field means is written once, in docs/image-definitions.md, and
# crates/ocipack-host/tests/cross_builder.rs feeds every images/*.toml to
# both builders and compares the results field by field. Unknown fields are
# refused here with the host builder's message and list. Everything
# system-specific comes from `resolve`, which keeps this file free of
# nixpkgs and testable offline.
{ buildImage }:
{
  # The parsed TOML (builtins.fromTOML).
  definition,
  # Where it came from, for messages.
  file ? "<definition>",
  # {
  #   crate = name: package with bin/<binary>;
  #   nixpkgs = name: package;
  #   model = name: { model; file; license; };
  #   runtime = name: { package; env = { K = "V"; }; };  env: models.toml's
  #             `library_env` = the library's path (nix/project.nix);
  #   probe = package with bin/http-probe, or null;
  #   cacert = package with etc/ssl/certs/ca-bundle.crt, or null;
  #   root = repository root (a path), for [files];
  #   file = (optional) a [files] source path -> what to pack, for sources
  #          built by Nix (default: root + "/<path>");
  # }
  resolve,
  rebuildTag ? null,
}:
let
  d = definition;
  allowed = {
    top = [
      "name"
      "description"
      "tags"
      "source"
      "config"
      "healthcheck"
      "models"
      "runtimes"
      "probe"
      "files"
      "directories"
      "labels"
      "layers"
    ];
    source = [
      "crate"
      "binary"
      "nixpkgs"
      "host_binaries"
      "host_unsupported"
      "workspace_binaries"
    ];
    config = [
      "entrypoint"
      "cmd"
      "env"
      "working_dir"
      "exposed_ports"
      "volumes"
      "stop_signal"
    ];
    healthcheck = [
      "test"
      "interval_seconds"
      "timeout_seconds"
      "retries"
      "start_period_seconds"
    ];
    directories = [ "paths" ];
    layers = [ "max" ];
  };
  checkKeys =
    where: keys: set:
    let
      bad = builtins.filter (k: !(builtins.elem k keys)) (builtins.attrNames set);
    in
    if bad == [ ] then
      true
    else
      throw "${file}: unknown field `${where}${builtins.head bad}`, expected one of ${
        builtins.concatStringsSep ", " (map (k: "`${k}`") keys)
      }; every field is described in docs/image-definitions.md";
  sub = key: d.${key} or { };
  valid =
    checkKeys "" allowed.top d
    && checkKeys "source." allowed.source (sub "source")
    && checkKeys "config." allowed.config (sub "config")
    && checkKeys "healthcheck." allowed.healthcheck (sub "healthcheck")
    && checkKeys "directories." allowed.directories (sub "directories")
    && checkKeys "layers." allowed.layers (sub "layers");

  name = d.name or (throw "${file}: missing field `name`; add name = \"<image name>\"");
  src = d.source or (throw "${file}: missing table [source]; add crate/binary or nixpkgs/host_binaries");
  cfg = sub "config";
  hc = d.healthcheck or null;

  app =
    if src ? crate then
      let
        pkg = resolve.crate src.crate;
        binary = src.binary or (throw "${file}: [source] names crate ${src.crate} but no `binary`; add binary = \"<name>\"");
      in
      {
        package = pkg;
        entries = [
          {
            target = "/app/bin/${binary}";
            symlink = "${pkg}/bin/${binary}";
          }
        ];
      }
    else if src ? nixpkgs then
      let
        pkg = resolve.nixpkgs src.nixpkgs;
        hostBinaries = src.host_binaries or [ ];
        entry = builtins.head ((cfg.entrypoint or [ ]) ++ [ "" ]);
        # An image without host_binaries (qdrant: no Debian package) still
        # needs its entrypoint; link it too when it names /usr/bin.
        linked =
          hostBinaries
          ++ (
            if builtins.match "/usr/bin/[^/]+" entry != null && !(builtins.elem entry hostBinaries) then
              [ entry ]
            else
              [ ]
          );
      in
      {
        package = pkg;
        # Same paths as in host mode, pointing into the package.
        entries = map (p: {
          target = p;
          symlink = "${pkg}/bin/${baseNameOf p}";
        }) linked;
      }
    else
      throw "${file}: [source] has neither `crate` nor `nixpkgs`; name the cargo package or the nixpkgs attribute";

  # A nixpkgs program is nixpkgs' build, not the host's Debian one, so the
  # licence label follows the package's own meta.license (nixpkgs 25.11's
  # Redis 8 is AGPL-3.0-only where Debian 12's Redis 7, which the
  # definition's label describes, is BSD-3-Clause). nixpkgs does not say
  # whether a list of licences means any or all; AND never understates.
  packageLicense =
    let
      l = (app.package.meta or { }).license or null;
      ls = if l == null then [ ] else if builtins.isList l then l else [ l ];
      ids = builtins.filter (x: x != null) (map (x: x.spdxId or null) ls);
    in
    if src ? nixpkgs && ids != [ ] then builtins.concatStringsSep " AND " ids else null;
  labels =
    (d.labels or { })
    // (
      if packageLicense == null then { } else { "org.opencontainers.image.licenses" = packageLicense; }
    );

  runtimes = map resolve.runtime (d.runtimes or [ ]);
  # Binaries of this workspace added at /usr/local/bin (a crate whose binary
  # has its name), as the host builder adds them.
  workspaceBinaries = map (b: {
    name = b;
    package = resolve.crate b;
  }) (src.workspace_binaries or [ ]);
  probe = if d.probe or false then resolve.probe else null;
  cacert = resolve.cacert or null;
  fileSource = resolve.file or (p: resolve.root + "/${p}");

  models = map (
    m:
    let
      r = resolve.model m;
    in
    {
      name = m;
      inherit (r) model file;
    }
  ) (d.models or [ ]);

  # The image's unprivileged user, as ocipack's plan defaults it
  # (crates/ocipack/src/plan.rs DEFAULT_ID), which owns [directories].
  appId = 65532;

  # [layers] max: the most layers the image may have, the base layer not
  # counted (default 20), as in the host builder. Here that is one layer per
  # model plus the closure's groups (the entries join the closure's top
  # group), so the closure gets what the models leave.
  layersMax = (sub "layers").max or 20;
  closureMax =
    if layersMax - builtins.length models >= 1 then
      layersMax - builtins.length models
    else
      throw "${file}: image ${name} needs ${toString (builtins.length models + 1)} layers but [layers] max is ${toString layersMax}; raise max or ship fewer models";

  runtimeEnv = builtins.foldl' (acc: r: acc // (r.env or { })) { } runtimes;
  env = (cfg.env or { }) // runtimeEnv;

  entries =
    app.entries
    ++ (
      if probe == null then
        [ ]
      else
        [
          {
            target = "/usr/local/bin/http-probe";
            symlink = "${probe}/bin/http-probe";
          }
        ]
    )
    ++ map (b: {
      target = "/usr/local/bin/${b.name}";
      symlink = "${b.package}/bin/${b.name}";
    }) workspaceBinaries
    ++ (
      if cacert == null then
        [ ]
      else
        [
          {
            target = "/etc/ssl/certs/ca-certificates.crt";
            symlink = "${cacert}/etc/ssl/certs/ca-bundle.crt";
          }
        ]
    )
    ++ map (target: {
      source = "${fileSource d.files.${target}}";
      inherit target;
    }) (builtins.attrNames (d.files or { }))
    ++ map (p: {
      target = p;
      directory = true;
      uid = appId;
      gid = appId;
    }) ((sub "directories").paths or [ ]);

  optional = key: value: if value == null then { } else { ${key} = value; };
  config =
    optional "entrypoint" (cfg.entrypoint or null)
    // optional "cmd" (cfg.cmd or null)
    // optional "workingDir" (cfg.working_dir or null)
    // optional "exposedPorts" (cfg.exposed_ports or null)
    // optional "volumes" (cfg.volumes or null)
    // optional "stopSignal" (cfg.stop_signal or null)
    // optional "labels" (if d ? labels || packageLicense != null then labels else null)
    // {
      env = map (k: "${k}=${env.${k}}") (builtins.attrNames env);
    }
    // optional "healthcheck" (
      if hc == null then
        null
      else
        { inherit (hc) test; }
        // optional "intervalSeconds" (hc.interval_seconds or null)
        // optional "timeoutSeconds" (hc.timeout_seconds or null)
        // optional "retries" (hc.retries or null)
        // optional "startPeriodSeconds" (hc.start_period_seconds or null)
    );
in
assert valid;
buildImage {
  inherit
    name
    models
    entries
    config
    rebuildTag
    ;
  tags = d.tags or [ "latest" ];
  annotations = labels;
  contents =
    [ app.package ]
    ++ map (r: r.package) runtimes
    ++ map (b: b.package) workspaceBinaries
    ++ (if probe == null then [ ] else [ probe ])
    ++ (if cacert == null then [ ] else [ cacert ]);
  roots = [ app.package ];
  maxLayers = closureMax;
}
