// The scoring service's answers (docs/services.md); the API only grows.
export type Point = [number, number];

export interface Face {
  box: [number, number, number, number];
  score: number;
  landmarks: Point[];
}

export interface ScoreResult {
  score: number;
  components: Record<string, number>;
  percentile: number | null;
  cached: boolean;
  face: Face;
  faces_detected: number;
  image_sha256?: string;
  userId?: string;
  indexed?: boolean;
}

export interface SimilarResult {
  userId: string;
  similar: { userId: string; similarity: number }[];
}

export interface ApiError {
  error: { code: string; message: string };
}
