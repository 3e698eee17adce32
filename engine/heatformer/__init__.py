"""HeatFormer-S: a multi-view neural optimizer over joint heatmaps (see MODEL.md)."""
