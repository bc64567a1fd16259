# webApp: the Next.js frontend in web/, built with `next build`, laid out as
# the host build leaves web/: $out/.next/standalone and $out/.next/static.
# nix/project.nix resolves the [files] sources of images/frontend.toml under
# `web/.next/` into it (web/public and web/healthcheck.js are sources).
#
# buildNpmPackage with importNpmLock (not a plain npmDepsHash): every tarball
# in package-lock.json becomes its own fixed-output fetch checked against the
# lock's `integrity`, so no hash has to be updated by hand when the lock
# changes, and the lock stays the single list of dependencies.
{
  buildNpmPackage,
  importNpmLock,
  nodejs,
}:
{
  # The web/ directory (a path).
  src,
  version ? "0.1.0",
}:
buildNpmPackage {
  pname = "aurum-web";
  inherit version src nodejs;
  npmDeps = importNpmLock { npmRoot = src; };
  inherit (importNpmLock) npmConfigHook;
  env.NEXT_TELEMETRY_DISABLED = "1";
  # `npm run build` is `next build`; nothing to `npm install` into $out.
  dontNpmInstall = true;
  # The standalone tree is shipped as built; no shebang or ELF rewriting.
  dontFixup = true;
  installPhase = ''
    runHook preInstall
    mkdir -p $out/.next
    cp -r .next/standalone $out/.next/standalone
    cp -r .next/static $out/.next/static
    runHook postInstall
  '';
}
