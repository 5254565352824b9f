# Drawn by heed (viz/viz.cpp). Edit and redraw in this folder with: gnuplot vae_fd.gp
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
  set terminal pngcairo size 800,500 noenhanced font 'sans,10'
} else {
  set terminal png size 800,500 noenhanced
}
set output 'vae_fd.png'
set datafile separator ','
set datafile columnheaders
set title 'vae: FD-FMNIST of 10000 samples against minutes of training (1 thread, AMD EPYC Zen 5)'
set xlabel 'train_minutes'
set ylabel 'fd_fmnist'
set grid
set offsets graph 0.02, graph 0.02, graph 0.05, graph 0.05
plot 'vae_fd.csv' using 1:2 with lines lw 2 lc rgb '#1f77b4' title 'mlp s0', \
     'vae_fd.csv' using 1:3 with lines lw 2 lc rgb '#ff7f0e' title 'mlp s1', \
     'vae_fd.csv' using 1:4 with lines lw 2 lc rgb '#2ca02c' title 'conv s0', \
     'vae_fd.csv' using 1:5 with lines lw 2 lc rgb '#d62728' title 'conv s1', \
     'vae_fd.csv' using 1:6 with lines lw 2 lc rgb '#9467bd' title 'attn s0', \
     'vae_fd.csv' using 1:7 with lines lw 2 lc rgb '#8c564b' title 'attn s1', \
     'vae_fd.csv' using 1:8 with lines lw 2 lc rgb '#e377c2' title 'conv-attn s0', \
     'vae_fd.csv' using 1:9 with lines lw 2 lc rgb '#7f7f7f' title 'conv-attn s1'
