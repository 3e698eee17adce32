"""Synthetic, licence-clean training data: poses, shapes, camera rigs, detector-like keypoints."""
