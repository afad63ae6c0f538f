#!/usr/bin/env bash
# Maze planning (the paper's section 5.3): trajectories of a noisy waypoint controller in the
# maze2d-large layout (300-step windows, every 6th point: 50 (x, y) points), one 1-d U-Net with
# the Hadamard interpolant trained once, then 10,000 plans between uniform random free points
# (start pinned at index 0, goal at index k, k searched upward until the path avoids the walls),
# scored against the exact geodesic; a figure of example plans and a detour through waypoints.
#   bash papers/negrel2025/maze_planning.sh [WORKDIR]
# Data and model go to WORKDIR (default ./negrel2025_work, not committed); results and figures
# to papers/negrel2025/results/maze_*.{json,png} (committed).
# CPU time: 10 s of data, 35 min of training (one thread), ~10 min for the 10,000 plans (two threads).
set -euo pipefail
W=${1:-negrel2025_work}
HERE=$(cd "$(dirname "$0")" && pwd)
R=$HERE/results
mkdir -p "$W"
export OMP_WAIT_POLICY=PASSIVE

phi4si maze dataset --out "$W/maze.h5" --n-windows 50000 --seed 0 --overwrite
phi4si maze train --data "$W/maze.h5" --out "$W/maze.pt" --minutes 35 --threads 1 --checkpoint-every 500 \
    --no-progress --overwrite
phi4si maze evaluate --model "$W/maze.pt" --n-plans 10000 --tries 4 --steps 20 --seed 0 --threads 2 \
    --out "$R/maze_planning.json" --figure "$R/maze_planning.png" --examples 12 --overwrite
# the detour example: the same start and goal, directly and through two waypoints
phi4si maze plan --model "$W/maze.pt" --start 1.5 1.5 --goal 10.5 7.5 --steps 20 --seed 0 \
    --out "$R/maze_plan_direct.json" --figure "$R/maze_plan_direct.png" --overwrite
phi4si maze plan --model "$W/maze.pt" --start 1.5 1.5 --goal 10.5 7.5 --via 10.5 1.5 --steps 20 \
    --seed 0 --out "$R/maze_plan_detour.json" --figure "$R/maze_plan_detour.png" --overwrite
# solver settings: validity, length and time per plan against the default (heun 20 steps, 4 tries)
python "$HERE/maze_settings.py" --model "$W/maze.pt" --n-plans 1000 --seed 1 \
    --settings heun:20:4 heun:10:4 heun:5:4 heun:20:1 euler:20:4 --out "$R/maze_settings.json"
