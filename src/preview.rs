//! The window: shows the output canvas letterboxed into whatever size the window has.
//! Only added when Lucid runs with a window (`--no-preview` leaves it out).

use bevy::prelude::*;
use bevy::window::PrimaryWindow;

use crate::video::{OutputCanvas, letterbox};

/// Draws the canvas into the primary window.
pub struct PreviewPlugin;

#[derive(Component)]
struct CanvasView;

impl Plugin for PreviewPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(PostStartup, spawn_view)
            .add_systems(Update, fit_view_to_window);
    }
}

fn spawn_view(mut commands: Commands, canvas: Res<OutputCanvas>) {
    commands.spawn((
        Camera2d,
        Camera {
            clear_color: ClearColorConfig::Custom(Color::BLACK),
            ..default()
        },
        Msaa::Off,
    ));
    commands.spawn((
        CanvasView,
        Sprite {
            image: canvas.image.clone(),
            custom_size: Some(canvas.size.as_vec2()),
            ..default()
        },
    ));
}

fn fit_view_to_window(
    windows: Query<&Window, With<PrimaryWindow>>,
    canvas: Res<OutputCanvas>,
    mut views: Query<&mut Sprite, With<CanvasView>>,
) {
    let Ok(window) = windows.single() else { return };
    let size = letterbox(
        canvas.size,
        UVec2::new(window.physical_width(), window.physical_height()),
    ) / window.scale_factor();
    for mut sprite in &mut views {
        if sprite.custom_size != Some(size) {
            sprite.custom_size = Some(size);
        }
    }
}
