# mkBaseLayer: the image's base layer (/etc/passwd and /etc/group with root
# and the user, /tmp, the user's home) as a derivation of its own.
#
# Its derivation depends only on the ocipack package and `user` (plus
# `allowRoot`, `extraAttrs`), so every image with the same user shares one
# store path (and one blob in a registry), and a service edit changes none. mkImage takes it as the first layer and tells ocipack not to
# generate one (plan `generateBase: false`); the image is byte-identical to
# one whose base layer ocipack generated.
{ mkLayer }:
{
  # The plan format's `user` object; ocipack's defaults for missing fields
  # (app, 65532:65532, /home/app).
  user ? { },
  allowRoot ? false,
  extraAttrs ? { },
}:
mkLayer {
  name = "base-${user.name or "app"}";
  layer = {
    kind = "base";
    inherit user allowRoot;
  };
  inherit extraAttrs;
}
