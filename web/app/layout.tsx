import type { Metadata, Viewport } from "next";
import "./globals.css";

export const metadata: Metadata = {
  title: "Aurum Circle · Face photo score",
  description: "Upload a face photo and see how the Aurum Circle models score it.",
  icons: { icon: "/icon.svg" },
};

export const viewport: Viewport = { themeColor: "#14110b", width: "device-width", initialScale: 1 };

export default function RootLayout({ children }: { children: React.ReactNode }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
